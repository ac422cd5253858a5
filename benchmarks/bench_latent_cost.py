"""Latent vs pixel diffusion at the study's 256x512: sampling seconds per image, peak memory
and training images/s, side by side in one run.

The pixel model is the `--preset` UNet at 256x512 with one channel; the latent model is the
same preset (matched width) at 256x512 / the VAE's factor with the VAE's latent channels, plus
the `--vae-preset` AutoencoderKL that decodes its samples. Both sample through
`OCTDiffusionPipeline` with the same scheduler, steps, batch and batch-invariant path; the
latent figure includes the VAE decode. Training is one step of the training scripts' kind
(noise, random timestep, MSE, backward, AdamW) on a batch; the latent model trains on cached
latents (train_ddpm.py --vae encodes the split once), so the one-off encode is timed
separately, per image. Weights are random: cost does not depend on them.

Each measurement runs in its own process (peak RSS, `ru_maxrss`, is a process maximum),
alternating pixel, latent, pixel, latent, ... for --repeats rounds; medians are printed with
the ratios.

    .venv/bin/python benchmarks/bench_latent_cost.py                        # 20 steps, ~15 min on 2 cores
    .venv/bin/python benchmarks/bench_latent_cost.py --steps 2 --repeats 1  # a quick look
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

KINDS = ("pixel", "latent")


def child(kind: str, args) -> dict:
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler

    from medicraft_hf.models import scheduler_for
    from medicraft_hf.parsing import parse_resolution
    from medicraft_hf.pipeline import OCTDiffusionPipeline
    from medicraft_hf.schema import CLASS_NAMES
    from medicraft_hf.unet import build_unet
    from medicraft_hf.vae import build_vae, check_divisible

    torch.manual_seed(0)
    height, width = parse_resolution(args.resolution)
    vae = None
    if kind == "latent":
        vae = build_vae(args.vae_preset, resolution=(height, width)).eval()
        size, channels = check_divisible((height, width), vae), vae.config.latent_channels
    else:
        size, channels = (height, width), 1
    unet = build_unet(len(CLASS_NAMES), args.preset, resolution=size, channels=channels)
    pipe = OCTDiffusionPipeline(unet=unet.eval(), scheduler=DDPMScheduler(), class_names=list(CLASS_NAMES), vae=vae)
    pipe.scheduler = scheduler_for(pipe, args.scheduler)
    pipe.set_progress_bar_config(disable=True)
    labels = [i % len(CLASS_NAMES) for i in range(args.batch_size)]

    def sample(steps: int) -> None:
        generators = [torch.Generator().manual_seed(i) for i in range(args.batch_size)]
        pipe(labels, num_inference_steps=steps, generator=generators, output_type="np", batch_invariant=True)

    rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # torch, models
    sample(1)  # warm-up: first-call allocations
    start = time.perf_counter()
    sample(args.steps)
    sample_s = (time.perf_counter() - start) / args.batch_size
    rss_sampling = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    encode_s = None
    if vae is not None:  # the one-off cost of the latent cache, per image
        images = torch.rand(args.batch_size, 1, height, width) * 2 - 1
        with torch.no_grad():
            vae.encode(images[:1])
            start = time.perf_counter()
            vae.encode(images).latent_dist.sample()
        encode_s = (time.perf_counter() - start) / args.batch_size

    unet.train()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    x = torch.randn(args.train_batch_size, channels, *size)
    classes = torch.tensor([i % len(CLASS_NAMES) for i in range(args.train_batch_size)])

    noise_scheduler = DDPMScheduler()

    def train_step() -> None:
        noise = torch.randn_like(x)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(x),))
        noisy = noise_scheduler.add_noise(x, noise, t)
        loss = F.mse_loss(unet(noisy, t, class_labels=classes).sample, noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    train_step()  # warm-up
    start = time.perf_counter()
    for _ in range(args.train_steps):
        train_step()
    train_img_s = args.train_steps * args.train_batch_size / (time.perf_counter() - start)
    return {"kind": kind, "torch_threads": torch.get_num_threads(), "latent_size": list(size), "latent_channels": channels,
            "unet_params_m": round(sum(p.numel() for p in unet.parameters()) / 1e6, 2),
            "vae_params_m": round(sum(p.numel() for p in vae.parameters()) / 1e6, 2) if vae is not None else 0.0,
            "sample_s_per_image": sample_s, "encode_s_per_image": encode_s, "train_img_s": train_img_s,
            "rss_models_built_mib": rss_built, "peak_rss_sampling_mib": rss_sampling,
            "sampling_memory_mib": rss_sampling - rss_built,
            "peak_rss_training_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", default="256x512")
    parser.add_argument("--preset", default="cpu-small", help="UNet preset, the same width for both")
    parser.add_argument("--vae-preset", default="f4c4")
    parser.add_argument("--scheduler", default="sde-dpmsolver++")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=2, help="images sampled together")
    parser.add_argument("--train-batch-size", type=int, default=4)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds (pixel, latent)")
    parser.add_argument("--json", help="write the numbers here")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args)))
        return {}

    runs = {kind: [] for kind in KINDS}
    for _ in range(args.repeats):
        for kind in KINDS:
            out = subprocess.run([sys.executable, __file__, "--child", kind, *(argv or sys.argv[1:])],
                                 capture_output=True, text=True, check=True).stdout
            runs[kind].append(json.loads(out.strip().splitlines()[-1]))

    def median(kind, key):
        return statistics.median(run[key] for run in runs[kind])

    result = {"settings": {k: v for k, v in vars(args).items() if k not in ("child", "json")},
              "torch_threads": runs["pixel"][0]["torch_threads"]}  # the measuring processes' own
    for kind in KINDS:
        first = runs[kind][0]
        result[kind] = {k: first[k] for k in ("latent_size", "latent_channels", "unet_params_m", "vae_params_m")}
        for key in ("sample_s_per_image", "train_img_s", "rss_models_built_mib", "peak_rss_sampling_mib",
                    "sampling_memory_mib", "peak_rss_training_mib"):
            result[kind][key] = round(median(kind, key), 3)
        result[kind]["sample_s_per_image_each"] = [round(run["sample_s_per_image"], 3) for run in runs[kind]]
    result["latent"]["encode_s_per_image"] = round(median("latent", "encode_s_per_image"), 3)
    result["sampling_speedup_latent_vs_pixel"] = round(
        result["pixel"]["sample_s_per_image"] / result["latent"]["sample_s_per_image"], 1)
    result["training_speedup_latent_vs_pixel"] = round(
        result["latent"]["train_img_s"] / result["pixel"]["train_img_s"], 1)
    # Peak RSS above what torch and the models already held: the memory sampling itself needs.
    result["sampling_memory_ratio_pixel_vs_latent"] = round(
        result["pixel"]["sampling_memory_mib"] / max(result["latent"]["sampling_memory_mib"], 1.0), 1)
    print(json.dumps(result, indent=2))
    if args.json:
        from medicraft_hf.io import write_json_atomic

        write_json_atomic(args.json, result)
    return result


if __name__ == "__main__":
    main()
