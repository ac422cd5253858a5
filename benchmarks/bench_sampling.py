"""Sampling speed: the default fast sampler (SDE DPM-Solver++) against 1000-step DDPM, one run.

    OMP_NUM_THREADS=2 python benchmarks/bench_sampling.py [--batch-size 8] [--model DIR]

Both samplers run the same model on the same batch of the same classes in this process;
the ratio of their images/s is printed. The model is the embedded demo model when it is
installed, else a `cpu-small` UNet (64x128) with random weights: the time of a denoising
step does not depend on the weights. DDPM is the original project's sampler (1000
ancestral steps). `--ddpm-timed-steps K` times K DDPM steps only and scales to 1000 (each
DDPM step is one UNet call plus an elementwise update, so its cost is the same at every
timestep); the output says when it did so.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from diffusers import DDPMScheduler

from medicraft_hf.models import DEFAULT_SCHEDULER, DEMO_MODEL_DIR, load_pipeline, make_scheduler
from medicraft_hf.pipeline import OCTDiffusionPipeline
from medicraft_hf.sampling_defaults import DEFAULT_STEPS
from medicraft_hf.schema import CLASS_NAMES
from medicraft_hf.unet import build_unet

DDPM_STEPS = 1000


def benchmark_pipeline(model: str | None) -> tuple[OCTDiffusionPipeline, str]:
    if model is not None or (DEMO_MODEL_DIR / "model_index.json").is_file():
        return load_pipeline(model), model or "demo model"
    torch.manual_seed(0)
    unet = build_unet(len(CLASS_NAMES), preset="cpu-small")
    pipe = OCTDiffusionPipeline(unet, DDPMScheduler(num_train_timesteps=1000), class_names=list(CLASS_NAMES))
    pipe.set_progress_bar_config(disable=True)
    return pipe, "cpu-small UNet, random weights"


def seconds_per_batch(pipe, scheduler: str, steps: int, batch_size: int, repeats: int,
                      batch_invariant: bool = False) -> float:
    pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
    labels = [i % len(pipe.class_names) for i in range(batch_size)]
    times = []
    for r in range(repeats):
        generators = [torch.Generator().manual_seed(1000 * r + i) for i in range(batch_size)]
        start = time.perf_counter()
        pipe(class_labels=labels, num_inference_steps=steps, generator=generators, output_type="np",
             batch_invariant=batch_invariant)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="pipeline folder or Hub id (default: demo model, else cpu-small)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="steps of the fast sampler (its default)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds of both samplers (median)")
    parser.add_argument("--ddpm-timed-steps", type=int, default=DDPM_STEPS,
                        help=f"DDPM steps actually timed (scaled to {DDPM_STEPS} when fewer)")
    args = parser.parse_args()
    if not 1 <= args.ddpm_timed_steps <= DDPM_STEPS:
        raise SystemExit(f"--ddpm-timed-steps must be in 1..{DDPM_STEPS}")

    pipe, what = benchmark_pipeline(args.model)
    h, w = pipe.image_size
    print(f"model: {what} ({sum(p.numel() for p in pipe.unet.parameters()) / 1e6:.2f}M params, {h}x{w}); "
          f"batch {args.batch_size}; torch threads {torch.get_num_threads()}")
    seconds_per_batch(pipe, DEFAULT_SCHEDULER, 2, args.batch_size, 1)  # warm-up (allocations, kernels)

    # Alternate the two samplers so that a change of machine load hits both alike.
    fast, ddpm, exact = [], [], []
    for _ in range(args.repeats):
        fast.append(seconds_per_batch(pipe, DEFAULT_SCHEDULER, args.steps, args.batch_size, 1))
        exact.append(seconds_per_batch(pipe, DEFAULT_SCHEDULER, args.steps, args.batch_size, 1, batch_invariant=True))
        ddpm.append(
            seconds_per_batch(pipe, "ddpm", args.ddpm_timed_steps, args.batch_size, 1)
            * DDPM_STEPS / args.ddpm_timed_steps
        )
    ratios = [d / f for f, d in zip(fast, ddpm)]
    note = "" if args.ddpm_timed_steps == DDPM_STEPS else f" (scaled from {args.ddpm_timed_steps} timed steps)"
    fast_s, ddpm_s = statistics.median(fast), statistics.median(ddpm)
    print(f"{DEFAULT_SCHEDULER:>12} {args.steps:>4} steps: {fast_s:8.2f} s/batch  {args.batch_size / fast_s:8.3f} images/s")
    print(f"{'ddpm':>12} {DDPM_STEPS:>4} steps: {ddpm_s:8.2f} s/batch  {args.batch_size / ddpm_s:8.4f} images/s{note}")
    print(f"speed-up: {statistics.median(ratios):.1f}x, median of {len(ratios)} alternating rounds "
          f"({', '.join(f'{r:.1f}' for r in ratios)}); target >= 40x")
    # `medicraft generate` samples batch-invariant (exact for any batch size / process count).
    costs = [e / f for f, e in zip(fast, exact)]
    print(f"batch-invariant {DEFAULT_SCHEDULER} (as `medicraft generate` runs): {statistics.median(exact):.2f} s/batch, "
          f"{statistics.median(costs):.2f}x the batched time ({', '.join(f'{c:.2f}' for c in costs)})")

if __name__ == "__main__":
    main()
