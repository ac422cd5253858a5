"""Load on the Space: bursts beyond the queue, sustained sequential traffic, cancels and disconnects.

Launches space/app.py on 127.0.0.1 (in this process, so its RSS is the server's) and drives it
with gradio_client, as visitors' scripts would:

1. burst: `--burst` requests submitted at once, more than the queue holds (1 running +
   QUEUE_SIZE waiting): the rest must be turned away at once ("Queue is full");
2. sustained: `--sustained` requests one after another, RSS sampled after each, to see it
   level off (or find a leak);
3. cancels: a long request cancelled mid-way (`job.cancel()`), then the next request on the
   same scheduler must succeed and give the images a fresh run gives;
4. disconnects: a client process that submits a long request and is killed mid-way; the
   next request must succeed.

Reports successes, rejections, errors, latency percentiles (p50/p90/p99/max) per phase,
peak RSS and the RSS series of the sustained phase.

    .venv/bin/python benchmarks/bench_space_load.py [--model DIR] [--burst 40] [--sustained 60] [--out load.json]

Without --model it serves an untrained tiny 32x64 UNet (tests.factories), so the numbers
measure the Space's machinery (queue, threads, downloads), not the model.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SMALL = ("all classes, balanced", 2, 0, "dpmsolver++", 4, 2.0)  # one batch, quick
LONG = ("all classes, balanced", 16, 3, "dpmsolver++", 30, 2.0)  # four batches, seconds

DISCONNECTING_CLIENT = """
import sys, time
from gradio_client import Client
client = Client(sys.argv[1], verbose=False)
client.submit(*{long!r}, api_name="/generate")
print("submitted", flush=True)
time.sleep(600)
"""


def percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    import numpy as np

    p = np.percentile(values, [50, 90, 99])
    return {"n": len(values), "p50_s": round(float(p[0]), 3), "p90_s": round(float(p[1]), 3),
            "p99_s": round(float(p[2]), 3), "max_s": round(max(values), 3)}


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def outcome_of(call) -> tuple[str, float, object]:
    from gradio_client.exceptions import AppError
    from gradio_client.utils import QueueError

    start = time.perf_counter()
    try:
        result = call()
        return "success", time.perf_counter() - start, result
    except QueueError:
        return "rejected", time.perf_counter() - start, None
    except AppError as err:
        return f"error: {err}", time.perf_counter() - start, None
    except Exception as err:  # noqa: BLE001 - counted and reported
        return f"error: {type(err).__name__}: {err}", time.perf_counter() - start, None


def summarize(outcomes: list[tuple[str, float, object]]) -> dict:
    counts: dict[str, int] = {}
    for kind, _, _ in outcomes:
        counts[kind] = counts.get(kind, 0) + 1
    return {"counts": counts,
            "success_latency": percentiles([s for k, s, _ in outcomes if k == "success"]),
            "rejection_latency": percentiles([s for k, s, _ in outcomes if k == "rejected"])}


def pixels(result) -> list:
    import numpy as np
    from PIL import Image

    return [np.asarray(Image.open(item["image"])) for item in result[0]]


def same_images(a, b) -> bool:
    import numpy as np

    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="pipeline folder or Hub id (default: an untrained tiny UNet)")
    parser.add_argument("--burst", type=int, default=40, help="requests submitted at once")
    parser.add_argument("--sustained", type=int, default=60, help="requests one after another")
    parser.add_argument("--cancels", type=int, default=3)
    parser.add_argument("--disconnects", type=int, default=2)
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args(argv)

    from gradio_client import Client

    spec = importlib.util.spec_from_file_location("medicraft_space_app", ROOT / "space" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    model = args.model
    if model is None:
        from tests.factories import save_tiny_pipeline

        model = str(save_tiny_pipeline(Path(tempfile.mkdtemp(prefix="bench-space-load-")) / "tiny"))
    demo = app.build_demo(model=model)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    result: dict = {"model": args.model or "untrained tiny 32x64 UNet", "queue_size": app.QUEUE_SIZE,
                    "concurrency": app.QUEUE_CONCURRENCY}
    started = time.perf_counter()
    try:
        client = Client(demo.local_url, verbose=False)
        reference = pixels(client.predict(*SMALL, api_name="/generate"))  # also the warm-up
        result["rss_after_warmup_mb"] = round(rss_mb(), 1)

        # 1. burst beyond the queue
        outcomes: list = [None] * args.burst
        def one(i):
            outcomes[i] = outcome_of(lambda: client.predict(*SMALL, api_name="/generate"))
        threads = [threading.Thread(target=one, args=(i,)) for i in range(args.burst)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result["burst"] = {"requests": args.burst, **summarize(outcomes),
                           "identical_to_reference": sum(same_images(pixels(r), reference)
                                                         for k, _, r in outcomes if k == "success")}

        # 2. sustained sequential traffic, RSS after each request
        outcomes, series = [], []
        for _ in range(args.sustained):
            outcomes.append(outcome_of(lambda: client.predict(*SMALL, api_name="/generate")))
            series.append(round(rss_mb(), 1))
        quarter = max(1, len(series) // 4)
        result["sustained"] = {"requests": args.sustained, **summarize(outcomes),
                               "rss_mb_every_10": series[::10] + series[-1:],
                               "rss_growth_last_three_quarters_mb": round(series[-1] - series[quarter - 1], 1)}

        # 3. cancels mid-request; the next request on the same scheduler must match a fresh run
        outcomes, matches = [], 0
        for _ in range(args.cancels):
            job = client.submit(*LONG, api_name="/generate")
            deadline = time.time() + 60
            while not job.outputs() and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            threading.Thread(target=lambda j=job: outcome_of(j.cancel), daemon=True).start()
            time.sleep(0.2)
            outcome = outcome_of(lambda: client.predict(*SMALL, api_name="/generate"))
            outcomes.append(outcome)
            matches += outcome[0] == "success" and same_images(pixels(outcome[2]), reference)
        result["cancels"] = {"cancelled": args.cancels, "next_request": summarize(outcomes),
                             "next_identical_to_fresh_run": matches}

        # 4. clients killed mid-request
        outcomes, matches = [], 0
        for _ in range(args.disconnects):
            proc = subprocess.Popen([sys.executable, "-c", DISCONNECTING_CLIENT.format(long=LONG), demo.local_url],
                                    stdout=subprocess.PIPE, text=True)
            proc.stdout.readline()  # "submitted"
            time.sleep(1.0)
            proc.kill()
            proc.wait()
            outcome = outcome_of(lambda: client.predict(*SMALL, api_name="/generate"))
            outcomes.append(outcome)
            matches += outcome[0] == "success" and same_images(pixels(outcome[2]), reference)
        result["disconnects"] = {"killed_clients": args.disconnects, "next_request": summarize(outcomes),
                                 "next_identical_to_fresh_run": matches}
    finally:
        demo.close()
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["cpu_seconds"] = round(sum(os.times()[:2]), 1)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["rss_end_mb"] = round(rss_mb(), 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
