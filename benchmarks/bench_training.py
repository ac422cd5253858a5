#!/usr/bin/env python
"""Training throughput: `training/train_ddpm.py`'s loop vs a plain diffusers-style loop.

The plain loop is what diffusers' `examples/unconditional_image_generation/train_unconditional.py`
does per step (accelerate, shuffled DataLoader, noise + random timesteps, MSE, clip, AdamW,
LR schedule, EMA), with class labels passed to the same class-conditional UNet. Both run on
the same UNet preset, batch size, precision and data (a phantom dataset written once), one
after the other and repeated alternately, in one process; the ratio is printed.

    OMP_NUM_THREADS=2 python benchmarks/bench_training.py --preset cpu-small --steps 20 --repeats 2
    python benchmarks/bench_training.py --preset study-scale --train_batch_size 4 --mixed_precision bf16  # GPU
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from datasets import DatasetDict
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel

from medicraft_hf.data.build import rows_to_dataset, save_dataset_dict
from medicraft_hf.data.phantom import phantom_rows
from medicraft_hf.parsing import parse_resolution
from medicraft_hf.schema import CLASS_NAMES
from medicraft_hf.training.data import load_dataset_dict, with_training_transform
from medicraft_hf.unet import PRESETS, build_unet

ROOT = Path(__file__).resolve().parents[1]


def load_train_ddpm():
    spec = importlib.util.spec_from_file_location("train_ddpm", ROOT / "training" / "train_ddpm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_dataset(folder: Path, resolution, num_patients: int) -> Path:
    rows = phantom_rows(num_patients, seed=0, size=resolution)
    return save_dataset_dict(DatasetDict({"train": rows_to_dataset(rows)}), folder)


def plain_loop(data_dir, args) -> float:
    """diffusers' train_unconditional.py step, on the same UNet and data; returns images/s."""
    resolution = parse_resolution(args.resolution)
    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    set_seed(0)
    dataset = with_training_transform(load_dataset_dict(str(data_dir))["train"], resolution)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.train_batch_size, shuffle=True)
    model = build_unet(len(CLASS_NAMES), preset=args.preset, resolution=resolution)
    noise_scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8)
    lr_scheduler = get_scheduler("cosine", optimizer=optimizer, num_warmup_steps=2, num_training_steps=args.steps)
    ema = EMAModel(model.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=3 / 4,
                   model_cls=UNet2DModel, model_config=model.config)
    model, optimizer, loader, lr_scheduler = accelerator.prepare(model, optimizer, loader, lr_scheduler)
    ema.to(accelerator.device)
    model.train()
    step, images, start = 0, 0, time.perf_counter()
    for _ in range(math.ceil(args.steps / len(loader)) + 1):
        for batch in loader:
            clean, labels = batch["pixel_values"], batch["class_labels"]
            noise = torch.randn(clean.shape, device=clean.device)
            timesteps = torch.randint(0, 1000, (clean.shape[0],), device=clean.device).long()
            noisy = noise_scheduler.add_noise(clean, noise, timesteps)
            with accelerator.accumulate(model):
                pred = model(noisy, timesteps, class_labels=labels).sample
                loss = F.mse_loss(pred.float(), noise.float())
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                ema.step(model.parameters())
                step += 1
                images += clean.shape[0]
                loss.detach().item()  # the example logs the loss every step
                if step == args.steps:
                    return images / (time.perf_counter() - start)
    raise RuntimeError("dataset too small for the requested steps")


def script_loop(train_ddpm, data_dir, out_dir, args) -> float:
    summary = train_ddpm.main([
        "--dataset_name", str(data_dir), "--output_dir", str(out_dir), "--overwrite_output_dir",
        "--preset", args.preset, "--resolution", args.resolution, "--train_batch_size", str(args.train_batch_size),
        "--max_train_steps", str(args.steps), "--lr_warmup_steps", "2", "--use_ema", "--report_to", "none",
        "--mixed_precision", args.mixed_precision, "--checkpointing_steps", str(10 ** 9),
        "--validation_steps", str(10 ** 9), "--num_validation_images", "1", "--validation_inference_steps", "1",
    ])
    return summary["images_per_second"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="cpu-small", choices=sorted(PRESETS))
    p.add_argument("--resolution", default=None)
    p.add_argument("--train_batch_size", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--mixed_precision", default="no", choices=["no", "fp16", "bf16"])
    p.add_argument("--num_patients", type=int, default=4, help="Phantom exams of 12 B-scans each.")
    args = p.parse_args()
    args.resolution = "x".join(map(str, parse_resolution(args.resolution or PRESETS[args.preset]["sample_size"])))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.preset} {args.resolution}, batch {args.train_batch_size}, {args.steps} steps, "
          f"precision {args.mixed_precision}, {device}")
    train_ddpm = load_train_ddpm()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = make_dataset(Path(tmp) / "data", parse_resolution(args.resolution), args.num_patients)
        plain, ours = [], []
        for r in range(args.repeats):  # alternate which goes first, so warm-up and drifting load hit both alike
            if r % 2 == 0:
                plain.append(plain_loop(data_dir, args))
                ours.append(script_loop(train_ddpm, data_dir, Path(tmp) / "run", args))
            else:
                ours.append(script_loop(train_ddpm, data_dir, Path(tmp) / "run", args))
                plain.append(plain_loop(data_dir, args))
            print(f"repeat {r}: plain {plain[-1]:.2f} img/s, train_ddpm.py {ours[-1]:.2f} img/s")
    p_med, o_med = statistics.median(plain), statistics.median(ours)
    print(f"median: plain loop {p_med:.2f} img/s, train_ddpm.py {o_med:.2f} img/s, "
          f"ratio train_ddpm/plain = {o_med / p_med:.3f}")


if __name__ == "__main__":
    main()
