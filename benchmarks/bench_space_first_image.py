"""Time to first image in the Space on CPU, measured the way a visitor sees it.

Launches space/app.py on 127.0.0.1 and, for each model the page serves (by default the two
embedded ones: demo-fast, the default, and demo), presses Generate with the page's defaults
for that model (all classes balanced, 8 images, seed 0, guidance 1, the model's own sampler
and steps: LCM 4 steps for demo-fast, SDE DPM-Solver++ 20 for demo):

- through gradio_client: when the first images reach the client (the gallery streams one
  batch at a time, a batch being one image per core) and when all 8 and the downloads are done;
- in headless Chromium (with --browser): from the click on Generate until the first image
  is shown in the gallery.

Each is the median of --runs after one warm-up. Start-up (imports, model loads, launch) is
timed separately. Besides wall-clock seconds it reports the process's CPU seconds over the
gradio_client spans: on a busy machine the wall clock measures the neighbours too.

    .venv/bin/python benchmarks/bench_space_first_image.py [--model DIR|HUB_ID] [--browser] \
        [--screenshot docs/space_screenshot.png] [--out result.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def time_client(client, request: tuple, runs: int) -> dict:
    """Median seconds (wall and this process's CPU) to the first streamed images and to the end."""
    first, total, first_cpu, total_cpu = [], [], [], []
    for run in range(runs + 1):  # run 0 warms up (first-call allocations, lazy imports)
        t0, c0 = time.perf_counter(), time.process_time()
        job = client.submit(*request, api_name="/generate")
        first_at = first_cpu_at = None
        for update in job:  # one item per streamed update: "generating…", first batch, ..., final
            if first_at is None and update[0]:  # the first update with images in the gallery
                first_at, first_cpu_at = time.perf_counter() - t0, time.process_time() - c0
        done_at, done_cpu_at = time.perf_counter() - t0, time.process_time() - c0
        gallery = job.result()[0]  # raises if the run failed
        if first_at is None:  # everything came in the final update
            first_at, first_cpu_at = done_at, done_cpu_at
        assert len(gallery) == request[1], f"{len(gallery)} images, expected {request[1]}"
        if run:
            first.append(first_at)
            total.append(done_at)
            first_cpu.append(first_cpu_at)
            total_cpu.append(done_cpu_at)
    return {"first_image_s": round(statistics.median(first), 2),
            "all_images_s": round(statistics.median(total), 2),
            "first_image_cpu_s": round(statistics.median(first_cpu), 2),
            "all_images_cpu_s": round(statistics.median(total_cpu), 2),
            "first_image_s_each": [round(x, 2) for x in first]}


def time_browser(url: str, models: dict[str, tuple[str, int]], runs: int, screenshot: str | None) -> dict:
    """Per model (name -> its default scheduler and steps): median seconds from the click on
    Generate to the first image shown in the gallery."""
    from playwright.sync_api import sync_playwright

    results = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        for i, model in enumerate(models):
            times = []
            for run in range(runs + 1):
                page.goto(url)
                page.wait_for_selector("#generate")
                if i:  # choose the model in its menu, as a visitor does; the page then sets its sampler
                    page.locator("#model input").click()
                    page.get_by_role("option", name=model, exact=True).click()
                    page.wait_for_function("s => document.querySelector('#scheduler input').value === s",
                                           arg=models[model][0])
                t0 = time.perf_counter()
                page.click("#generate")
                page.wait_for_selector("#gallery img", timeout=600_000)
                elapsed = time.perf_counter() - t0
                page.wait_for_function("document.querySelector('#status').innerText.includes(' images in ')",
                                       timeout=600_000)
                status = page.locator("#status").inner_text()
                assert f"{model}," in status, status
                if run:
                    times.append(elapsed)
                if screenshot and not i and run == runs:
                    Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=screenshot, full_page=True)
                    print(f"screenshot: {screenshot}")
            results[model] = {"first_image_in_browser_s": round(statistics.median(times), 2),
                              "first_image_in_browser_s_each": [round(x, 2) for x in times]}
        browser.close()
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="pipeline folder or Hub id (default: the embedded demo-fast and demo)")
    parser.add_argument("--runs", type=int, default=3, help="generations to time after one warm-up")
    parser.add_argument("--browser", action="store_true", help="also time the first image in headless Chromium")
    parser.add_argument("--screenshot", help="save the page after the default model's last browser run here")
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args(argv)

    import torch

    start = time.perf_counter()
    spec = importlib.util.spec_from_file_location("space_app", ROOT / "space" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    demo = app.build_demo(model=args.model)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    from gradio_client import Client

    client = Client(demo.local_url, verbose=False)
    startup_s = time.perf_counter() - start
    served = app.load_models(args.model)
    defaults = {name: app.default_sampling(pipe) for name, (pipe, _, _) in served.items()}

    result = {"models": {}, "batch_size": app.BATCH_SIZE, "torch_threads": torch.get_num_threads(),
              "cpu": os.cpu_count(), "load_average_1min_before": round(os.getloadavg()[0], 1),
              "startup_s": round(startup_s, 2), "runs": args.runs}
    try:
        for name, (scheduler, steps) in defaults.items():
            request = (app.ALL_CLASSES, 8, 0, scheduler, steps, 1.0, name)
            result["models"][name] = {
                "image_size": list(served[name][0].image_size),
                "request": dict(zip(["class", "images", "seed", "scheduler", "steps", "guidance", "model"], request)),
                **time_client(client, request, args.runs)}
        if args.browser or args.screenshot:
            for name, numbers in time_browser(demo.local_url, defaults, args.runs, args.screenshot).items():
                result["models"][name].update(numbers)
    finally:
        demo.close()
    result["load_average_1min_after"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result, indent=2))
    if args.out:
        from medicraft_hf.io import write_json_atomic

        write_json_atomic(args.out, result)
    return result


if __name__ == "__main__":
    main()
