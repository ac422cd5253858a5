"""Time to first image in the Space on CPU, measured the way a visitor sees it.

Launches space/app.py on 127.0.0.1, presses Generate through gradio_client (the app's
defaults: all classes balanced, 8 images, SDE DPM-Solver++ 25 steps, guidance 1) and records
when the first batch reaches the client (the gallery streams one batch at a time) and
when the whole batch and its downloads are done. Start-up (imports, model load, launch)
is timed separately. Besides wall-clock seconds it reports the process's CPU seconds
over the same spans: on a shared, busy machine the wall clock measures the neighbours,
while CPU seconds with OMP_NUM_THREADS=1 estimate the wall time on one idle core.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_space_first_image.py [--model DIR|HUB_ID] \
        [--screenshot docs/space_screenshot.png]

Without --model it uses the embedded demo model; when that is missing it saves an
untrained `cpu-small` UNet (the demo model's shape, so the same cost) and says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]


def demo_or_stand_in(model: str | None) -> tuple[str, str]:
    from medicraft_hf.models import DEMO_MODEL_DIR

    if model:
        return model, model
    if (DEMO_MODEL_DIR / "model_index.json").is_file():
        return str(DEMO_MODEL_DIR), "embedded demo model"
    import torch
    from diffusers import DDPMScheduler

    from medicraft_hf.pipeline import OCTDiffusionPipeline
    from medicraft_hf.schema import CLASS_NAMES
    from medicraft_hf.unet import build_unet

    torch.manual_seed(0)
    folder = Path(tempfile.mkdtemp(prefix="bench-space-")) / "cpu-small-untrained"
    pipe = OCTDiffusionPipeline(build_unet(len(CLASS_NAMES), "cpu-small"), DDPMScheduler(), list(CLASS_NAMES))
    pipe.save_pretrained(folder)
    return str(folder), "untrained cpu-small UNet (demo model's shape; demo model not present)"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="pipeline folder or Hub id (default: the demo model)")
    parser.add_argument("--runs", type=int, default=3, help="generations to time after one warm-up")
    parser.add_argument("--out", help="write the numbers as JSON here")
    parser.add_argument("--screenshot", help="also press Generate in headless Chromium and save the page here")
    args = parser.parse_args(argv)

    import torch

    model, what = demo_or_stand_in(args.model)
    start = time.perf_counter()
    spec = importlib.util.spec_from_file_location("space_app", ROOT / "space" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    demo = app.build_demo(model=model)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    from gradio_client import Client

    client = Client(demo.local_url, verbose=False)
    startup_s = time.perf_counter() - start

    request = (app.ALL_CLASSES, 8, 0, app.DEFAULT_SCHEDULER, 25, 1.0)
    first, total, first_cpu, total_cpu = [], [], [], []
    try:
        for run in range(args.runs + 1):  # run 0 warms up (first-call allocations, lazy imports)
            t0, c0 = time.perf_counter(), time.process_time()
            job = client.submit(*request, api_name="/generate")
            first_at = first_cpu_at = None
            for _ in job:  # one item per streamed update: first batch, ..., final (with downloads)
                if first_at is None:
                    first_at, first_cpu_at = time.perf_counter() - t0, time.process_time() - c0
            done_at, done_cpu_at = time.perf_counter() - t0, time.process_time() - c0
            job.result()  # raises if the run failed
            if run:
                first.append(first_at)
                total.append(done_at)
                first_cpu.append(first_cpu_at)
                total_cpu.append(done_cpu_at)
        if args.screenshot:
            screenshot(demo.local_url, args.screenshot)
    finally:
        demo.close()

    result = {
        "model": what,
        "image_size": list(app.load_model(model)[0].image_size),
        "request": dict(zip(["class", "images", "seed", "scheduler", "steps", "guidance"], request)),
        "batch_size": app.BATCH_SIZE,
        "torch_threads": torch.get_num_threads(),
        "cpu": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "startup_s": round(startup_s, 2),
        "first_image_s": round(statistics.median(first), 2),
        "all_8_images_s": round(statistics.median(total), 2),
        "first_image_cpu_s": round(statistics.median(first_cpu), 2),
        "all_8_images_cpu_s": round(statistics.median(total_cpu), 2),
        "runs": args.runs,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        from medicraft_hf.io import write_json_atomic

        write_json_atomic(args.out, result)
    return result


def screenshot(url: str, path: str) -> None:
    """The page after one default Generate, in Debian's headless Chromium (as tests/test_space_browser.py)."""
    import shutil

    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=args)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        page.click("#generate")
        page.wait_for_function("document.querySelector('#status').innerText.includes(' images in ')",
                               timeout=600_000)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=path, full_page=True)
        browser.close()
    print(f"screenshot: {path}")


if __name__ == "__main__":
    main()
