"""Few-step sampling speed: the distilled model at 1-4 steps against its teacher at the 20-step
default and at 1000-step DDPM, side by side in one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_few_step.py [--fast-model DIR] [--teacher DIR] [--batch-size 8]

The distilled model (`training/distill.py`, LCMScheduler) and the teacher have the same UNet
(size and shape), and every sampler runs the same batch of the same classes, in alternating
rounds so that a change of machine load hits them alike; medians are printed with the ratios.
`--ddpm-timed-steps K` times K DDPM steps only and scales to 1000 (a DDPM step is one UNet call
plus an elementwise update, the same cost at every timestep); the output says when it did so.
For a latent model only the denoising is scaled: its VAE decodes once per image, whatever the
step count, and the decode's own time per batch is printed (at 256x512 it is most of a 4-step
image's time).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from medicraft_hf.few_step import FAST_DEMO_MODEL_DIR
from medicraft_hf.models import DEFAULT_SCHEDULER, DEMO_MODEL_DIR, load_pipeline, make_scheduler
from medicraft_hf.sampling_defaults import DEFAULT_STEPS

DDPM_STEPS = 1000


def seconds_per_batch(pipe, steps: int, batch_size: int, seed: int) -> float:
    labels = [i % len(pipe.class_names) for i in range(batch_size)]
    generators = [torch.Generator().manual_seed(seed + i) for i in range(batch_size)]
    start = time.perf_counter()
    pipe(class_labels=labels, num_inference_steps=steps, generator=generators, output_type="np")
    return time.perf_counter() - start


def decode_seconds(pipe, batch_size: int) -> float:
    """Seconds the VAE takes to decode a batch of latents (0 for a pixel model)."""
    if pipe.vae is None:
        return 0.0
    h, w = pipe.latent_size
    latents = torch.randn(batch_size, pipe.vae.config.latent_channels, h, w, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    with torch.no_grad():
        pipe._decode(latents, one_at_a_time=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast-model", default=str(FAST_DEMO_MODEL_DIR), help="distilled pipeline folder")
    parser.add_argument("--teacher", default=str(DEMO_MODEL_DIR), help="its teacher (same UNet size)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--few-steps", default="1,2,4", help="step counts of the distilled model")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--ddpm-timed-steps", type=int, default=DDPM_STEPS,
                        help=f"DDPM steps actually timed (scaled to {DDPM_STEPS} when fewer)")
    args = parser.parse_args()
    if not 1 <= args.ddpm_timed_steps <= DDPM_STEPS:
        raise SystemExit(f"--ddpm-timed-steps must be in 1..{DDPM_STEPS}")
    few_steps = [int(s) for s in args.few_steps.split(",")]

    fast = load_pipeline(args.fast_model)
    teacher = load_pipeline(args.teacher, scheduler=DEFAULT_SCHEDULER)
    ddpm = load_pipeline(args.teacher)
    ddpm.scheduler = make_scheduler("ddpm", ddpm.scheduler.config)
    if {k: v for k, v in fast.unet.config.items() if not k.startswith("_")} != \
            {k: v for k, v in teacher.unet.config.items() if not k.startswith("_")}:
        print("note: the distilled UNet's config differs from the teacher's")
    params = sum(p.numel() for p in fast.unet.parameters()) / 1e6
    h, w = fast.image_size
    print(f"distilled: {args.fast_model} ({type(fast.scheduler).__name__}); teacher: {args.teacher}; "
          f"{params:.2f}M params, {h}x{w}; batch {args.batch_size}; torch threads {torch.get_num_threads()}")

    runs = {f"distilled lcm {s:>4} steps": (fast, s, 1) for s in few_steps}
    runs[f"teacher {DEFAULT_SCHEDULER} {DEFAULT_STEPS} steps"] = (teacher, DEFAULT_STEPS, 1)
    runs[f"teacher ddpm {DDPM_STEPS} steps"] = (ddpm, args.ddpm_timed_steps, DDPM_STEPS / args.ddpm_timed_steps)
    for pipe, _, _ in runs.values():  # warm-up (allocations, kernels)
        seconds_per_batch(pipe, 2, args.batch_size, seed=10_000)
    times = {name: [] for name in runs}
    decode = []
    for r in range(args.repeats):
        for name, (pipe, steps, scale) in runs.items():
            seconds = seconds_per_batch(pipe, steps, args.batch_size, seed=1000 * r)
            if scale != 1:  # scale the denoising only; the decode happens once
                d = decode_seconds(pipe, args.batch_size)
                seconds = (seconds - d) * scale + d
            times[name].append(seconds)
        decode.append(decode_seconds(fast, args.batch_size))

    ddpm_name, default_name = list(runs)[-1], list(runs)[-2]
    note = "" if args.ddpm_timed_steps == DDPM_STEPS else f" (scaled from {args.ddpm_timed_steps} timed steps)"
    print(f"{'sampler':<36} {'s/batch':>8} {'images/s':>9} {'vs ddpm-1000':>13} {'vs 20-step':>11}")
    for name, ts in times.items():
        sec = statistics.median(ts)
        vs_ddpm = statistics.median(d / t for d, t in zip(times[ddpm_name], ts))
        vs_default = statistics.median(d / t for d, t in zip(times[default_name], ts))
        print(f"{name:<36} {sec:8.3f} {args.batch_size / sec:9.3f} {vs_ddpm:12.1f}x {vs_default:10.2f}x"
              + (note if name == ddpm_name else ""))
    if fast.vae is not None:
        best_time = statistics.median(times[f"distilled lcm {max(few_steps):>4} steps"])
        print(f"VAE decode alone: {statistics.median(decode):.3f} s/batch "
              f"({statistics.median(decode) / best_time:.0%} of the distilled model's {max(few_steps)}-step batch)")
    best = max(few_steps)
    ratio = statistics.median(d / t for d, t in zip(times[ddpm_name], times[f"distilled lcm {best:>4} steps"]))
    print(f"distilled at {best} steps vs 1000-step DDPM: {ratio:.0f}x (target >= 200x); medians of {args.repeats} "
          "alternating rounds, ratios per round")


if __name__ == "__main__":
    main()
