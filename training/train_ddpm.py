#!/usr/bin/env python
"""Train a class-conditional DDPM on OCT B-scans with 🤗 diffusers + accelerate.

    accelerate launch training/train_ddpm.py \
        --dataset_name out/phantom --preset cpu-small --resolution 64x128 \
        --train_batch_size 16 --max_train_steps 2000 --use_ema --mixed_precision bf16 \
        --checkpointing_steps 250 --resume_from_checkpoint latest --output_dir ddpm-oct

Flags follow diffusers' `examples/unconditional_image_generation/train_unconditional.py`.
Latent diffusion: `--vae <training/train_vae.py output>` trains the UNet on the VAE's latents of
the images at `--resolution` (encoded once and cached; `medicraft_hf.training.latents`), and
the saved pipeline holds the VAE.
The saved pipeline (`OCTDiffusionPipeline`, EMA weights with `--use_ema`) loads with
`medicraft_hf.models.load_pipeline(output_dir)` or plain diffusers (`custom_pipeline=`).
See training/README.md for configs, resuming and multi-GPU runs.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from medicraft_hf.cards.model_card import model_card
from medicraft_hf.distributed import leave_process_group
from medicraft_hf.hub import push_model_folder
from medicraft_hf.io import atomic_path, write_json_atomic
from medicraft_hf.models import DEFAULT_SCHEDULER, make_scheduler
from medicraft_hf.parsing import parse_resolution
from medicraft_hf.pipeline import OCTDiffusionPipeline, check_components, vae_scale_factor
from medicraft_hf.sources import public_name
from medicraft_hf.training import checkpoints
from medicraft_hf.training.arguments import (
    add_checkpoint_arguments,
    add_data_arguments,
    add_optimization_arguments,
    check_common_arguments,
)
from medicraft_hf.training.latents import encoded_dataset, load_vae
from medicraft_hf.training.output_dir import latest_grid
from medicraft_hf.training.run import (
    check_ranks_agree,
    checked_training_split,
    make_accelerator,
    resume,
    run_script,
    step_plan,
    training_loader,
)
from medicraft_hf.training.validation import log_grid, sample_grid
from medicraft_hf.unet import PRESETS, build_unet, unet_from_pipeline
from medicraft_hf.vae import check_divisible

# Hidden, so that pushes (which skip hidden files) never publish local dataset paths.
RUN_FILE = ".training_run.json"
LEGACY_RUN_FILE = "training_run.json"  # the name before 2026-11-25; still read
# Arguments that define a run: resuming into an output_dir with other values is an error.
RUN_IDENTITY = (
    "dataset_name", "dataset_revision", "train_split", "class_names", "preset", "resolution", "train_batch_size",
    "gradient_accumulation_steps", "learning_rate", "lr_scheduler", "lr_warmup_steps", "adam_beta1", "adam_beta2",
    "adam_weight_decay", "adam_epsilon", "max_grad_norm", "use_ema", "ema_inv_gamma", "ema_power", "ema_max_decay",
    "cfg_dropout_prob", "class_balanced", "init_from", "ddpm_num_steps", "ddpm_beta_schedule", "prediction_type", "seed",
    "vae",
)


def default_report_to() -> str:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return "none"
    return "tensorboard"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(p)
    # model
    p.add_argument("--preset", default="cpu-small", choices=sorted(PRESETS), help="UNet size.")
    p.add_argument("--resolution", default=None, help="HxW of the images, e.g. 64x128 (default: the preset's; with "
                   "--vae, the preset's times the VAE's factor).")
    p.add_argument("--vae", default=None,
                   help="Latent diffusion: an AutoencoderKL (training/train_vae.py's output_dir, a latent pipeline "
                        "or a Hub id). The UNet (--preset widths) then works on its latents.")
    p.add_argument("--init_from", default=None,
                   help="Start from the UNet weights of a saved pipeline (folder or Hub id), e.g. to fine-tune the "
                        "demo model on your data or to switch --prediction_type; --preset is then ignored.")
    p.add_argument("--ddpm_num_steps", type=int, default=1000)
    p.add_argument("--ddpm_beta_schedule", default="squaredcos_cap_v2")
    # v: well posed at the schedule's zero-SNR end, where epsilon's clean-image estimate divides by ~0
    # (see training/README.md); epsilon is kept for older runs.
    p.add_argument("--prediction_type", default="v_prediction", choices=["epsilon", "v_prediction"])
    p.add_argument("--cfg_dropout_prob", type=float, default=0.1,
                   help="Probability of replacing a label by the null class (classifier-free guidance).")
    add_optimization_arguments(p, output_dir="ddpm-oct")
    p.add_argument("--ema_inv_gamma", type=float, default=1.0)
    p.add_argument("--ema_power", type=float, default=3 / 4)
    add_checkpoint_arguments(p)
    p.set_defaults(report_to=default_report_to())
    args = p.parse_args(argv)

    if args.resolution is None and args.vae is None:
        args.resolution = PRESETS[args.preset]["sample_size"]
    if args.resolution is not None:
        args.resolution = "x".join(map(str, parse_resolution(args.resolution)))
    check_common_arguments(p, args)
    if not 0 <= args.cfg_dropout_prob < 1:
        p.error(f"--cfg_dropout_prob must be in [0, 1), got {args.cfg_dropout_prob}.")
    return args


def check_output_dir(args) -> None:
    """Refuse an output_dir that holds another run (or anything else) before writing to it."""
    out = Path(args.output_dir)
    if not out.exists() or args.overwrite_output_dir:
        return
    if not out.is_dir():
        raise ValueError(f"--output_dir {out} is a file; choose a folder.")
    if not any(out.iterdir()):
        return
    run_file = out / RUN_FILE if (out / RUN_FILE).is_file() else out / LEGACY_RUN_FILE
    if not run_file.is_file():
        raise ValueError(f"--output_dir {out} is not empty and holds no training run ({RUN_FILE} missing); "
                         "choose a new folder or pass --overwrite_output_dir.")
    saved = json.loads(run_file.read_text())
    ours = run_identity(args)
    changed = {k: (saved.get(k), ours[k]) for k in ours if saved.get(k) != ours[k]}
    if changed:
        diff = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise ValueError(f"--output_dir {out} holds a different run ({diff}); choose a new --output_dir "
                         "or pass --overwrite_output_dir.")
    if checkpoints.list_checkpoints(out) and not args.resume_from_checkpoint:
        raise ValueError(f"--output_dir {out} already holds checkpoints of this run; continue it with "
                         "--resume_from_checkpoint latest or start over with --overwrite_output_dir.")


def run_identity(args) -> dict:
    return {k: getattr(args, k) for k in RUN_IDENTITY}


def save_pipeline(accelerator, model, ema, noise_scheduler, class_names, args, step, counts, grid_name, vae=None):
    """Save the pipeline (EMA weights with --use_ema) and its card into output_dir; main process only."""
    pipe = pipeline_from(accelerator, model, ema, noise_scheduler, class_names, vae=vae)
    out = Path(args.output_dir)
    with tempfile.TemporaryDirectory(prefix=".pipeline-", dir=out) as tmp:
        tmp = Path(tmp)
        pipe.save_pretrained(tmp, safe_serialization=True)
        card = model_card(
            class_names=class_names, resolution=parse_resolution(args.resolution), train_steps=step,
            dataset_name=public_name(args.dataset_name), class_counts=counts, preset=args.preset,
            init_from=public_name(args.init_from) if args.init_from else None,
            scheduler=type(pipe.scheduler).__name__, use_ema=args.use_ema, sample_grid=grid_name,
            training_args={k: public_name(v) if k in ("dataset_name", "output_dir", "init_from", "vae") else v
                           for k, v in vars(args).items() if not k.startswith("hub_")},
            model_id=args.hub_model_id, vae=public_name(args.vae) if args.vae else None,
        )
        card.save(tmp / "README.md")
        # Move the components beside the checkpoints, one atomic rename each.
        for item in sorted(tmp.iterdir()):
            target = out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)


def pipeline_from(accelerator, model, ema, noise_scheduler, class_names, vae=None) -> OCTDiffusionPipeline:
    """An inference pipeline on a copy of the model, holding the EMA weights when there are any."""
    unet = copy.deepcopy(accelerator.unwrap_model(model)).float().eval()
    if ema is not None:
        ema.copy_to(unet.parameters())
    pipe = OCTDiffusionPipeline(unet=unet, scheduler=sampling_scheduler(noise_scheduler, latent=vae is not None),
                                class_names=class_names, vae=vae)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sampling_scheduler(noise_scheduler, latent: bool = False):
    """The pipeline ships with DPM-Solver++: good samples in ~20 steps instead of 1000."""
    return make_scheduler(DEFAULT_SCHEDULER, noise_scheduler.config, latent=latent)


def main(argv=None):
    args = parse_args(argv)
    output_dir = Path(args.output_dir)
    # Latent diffusion: the VAE's factor and channels shape the UNet; sizes it cannot divide fail here.
    vae = load_vae(args.vae) if args.vae else None
    if args.resolution is None:  # --vae without --resolution: the preset's size in latents
        factor = vae_scale_factor(vae)
        args.resolution = "x".join(str(n * factor) for n in parse_resolution(PRESETS[args.preset]["sample_size"]))
    resolution = parse_resolution(args.resolution)
    latent_size = check_divisible(args.resolution, vae) if vae is not None else resolution
    channels = vae.config.latent_channels if vae is not None else 1
    accelerator = make_accelerator(args)
    log = accelerator.print

    # ---- data: everything that can be wrong with it fails here, before step 1
    train_ds, class_names, class_counts = checked_training_split(args, resolution)
    args.class_names = class_names
    # A starting model of another shape fails here too, before anything is written.
    init_unet = unet_from_pipeline(args.init_from, class_names, args.resolution) if args.init_from else None
    if init_unet is not None:
        check_components(init_unet, vae)  # e.g. a pixel model given --vae
    check_output_dir(args)
    if args.overwrite_output_dir and accelerator.is_main_process:
        for _, path in checkpoints.list_checkpoints(output_dir):
            shutil.rmtree(path)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(output_dir / RUN_FILE, run_identity(args))
    log(f"Training on {len(train_ds)} images of {args.dataset_name}[{args.train_split}], "
        f"classes {class_counts}, {args.resolution} (HxW)"
        + (f", as {channels}x{latent_size[0]}x{latent_size[1]} latents of --vae {args.vae}." if vae else "."))

    # With a VAE the batches are cached latents (encoded once, here), under the same keys as pixels.
    data = encoded_dataset(accelerator, train_ds, resolution, vae, output_dir) if vae is not None else None
    train_dataloader = training_loader(args, train_ds, resolution, data)

    # ---- model, noise schedule, optimizer
    set_seed(args.seed)
    if init_unet is not None:
        model = init_unet.train()
    else:
        model = build_unet(len(class_names), preset=args.preset, resolution=latent_size, channels=channels)
    null_class_id = len(class_names)
    # Saved with the pipeline: DDPM's x0 clipping to [-1, 1] suits pixels, not latents.
    noise_scheduler = DDPMScheduler(num_train_timesteps=args.ddpm_num_steps, beta_schedule=args.ddpm_beta_schedule,
                                    prediction_type=args.prediction_type, clip_sample=args.vae is None)
    ema = None
    if args.use_ema:
        ema = EMAModel(model.parameters(), decay=args.ema_max_decay, use_ema_warmup=True, inv_gamma=args.ema_inv_gamma,
                       power=args.ema_power, model_cls=UNet2DModel, model_config=model.config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  weight_decay=args.adam_weight_decay, eps=args.adam_epsilon)

    num_update_steps_per_epoch, max_train_steps, num_epochs = step_plan(args, train_dataloader, accelerator)
    lr_scheduler = get_scheduler(args.lr_scheduler, optimizer=optimizer,
                                 num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=max_train_steps * accelerator.num_processes)
    model, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(model, optimizer, train_dataloader,
                                                                           lr_scheduler)
    if ema is not None:
        ema.to(accelerator.device)
    # Noise, timesteps and label drops come from this generator (one stream per rank), saved in checkpoints.
    noise_generator = torch.Generator().manual_seed(args.seed * 1000 + accelerator.process_index)

    if accelerator.is_main_process and args.report_to != "none":
        accelerator.init_trackers("train_ddpm", config={k: v if isinstance(v, (int, float, str, bool)) else str(v)
                                                         for k, v in vars(args).items()})

    # ---- resume
    global_step = resume(accelerator, args, ema=ema, noise_generator=noise_generator)
    first_epoch = global_step // num_update_steps_per_epoch
    skip_batches = (global_step % num_update_steps_per_epoch) * args.gradient_accumulation_steps

    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    log(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; {max_train_steps} steps, "
        f"{num_epochs} epochs, batch {total_batch} (per device {args.train_batch_size} x "
        f"{accelerator.num_processes} processes x {args.gradient_accumulation_steps} accumulation).")

    def checkpoint_and_save(step):
        checkpoints.save_checkpoint(accelerator, output_dir, step, ema=ema, noise_generator=noise_generator,
                                    total_limit=args.checkpoints_total_limit,
                                    state={"num_processes": accelerator.num_processes, "class_names": class_names,
                                           "max_train_steps": max_train_steps, "run": run_identity(args)})
        if accelerator.is_main_process:
            save_pipeline(accelerator, model, ema, noise_scheduler, class_names, args, step, class_counts,
                          latest_grid(output_dir), vae=vae)
        accelerator.wait_for_everyone()

    def validate(step):
        if accelerator.is_main_process:
            pipe = pipeline_from(accelerator, model, ema, noise_scheduler, class_names, vae=vae)
            grid = sample_grid(pipe, per_class=args.num_validation_images, seed=args.seed,
                               num_inference_steps=args.validation_inference_steps)
            with atomic_path(output_dir / "samples" / f"step_{step:07d}.png") as tmp:
                grid.save(tmp)
            log_grid(accelerator, grid, step)
        accelerator.wait_for_everyone()

    # ---- train
    progress = tqdm(total=max_train_steps, initial=global_step, desc="train", unit="step",
                    disable=not accelerator.is_local_main_process, dynamic_ncols=True)
    model.train()
    images_seen, speed, t_start = 0, 0.0, time.perf_counter()
    for epoch in range(first_epoch, num_epochs):
        if global_step >= max_train_steps:
            break
        train_dataloader.set_epoch(epoch)  # the sampler's order is a function of (seed, epoch)
        loader = train_dataloader
        if epoch == first_epoch and skip_batches:
            loader = accelerator.skip_first_batches(train_dataloader, skip_batches)
        for batch in loader:
            clean = batch["pixel_values"]
            labels = batch["class_labels"]
            bsz = clean.shape[0]
            noise = torch.randn(clean.shape, generator=noise_generator).to(clean.device)
            timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (bsz,),
                                      generator=noise_generator).to(clean.device)
            drop = (torch.rand(bsz, generator=noise_generator) < args.cfg_dropout_prob).to(clean.device)
            labels = torch.where(drop, torch.full_like(labels, null_class_id), labels)
            noisy = noise_scheduler.add_noise(clean, noise, timesteps)
            target = noise if args.prediction_type == "epsilon" else noise_scheduler.get_velocity(clean, noise,
                                                                                                  timesteps)
            with accelerator.accumulate(model):
                pred = model(noisy, timesteps, class_labels=labels).sample
                loss = F.mse_loss(pred.float(), target.float())
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            images_seen += bsz * accelerator.num_processes

            if not accelerator.sync_gradients:
                continue
            if ema is not None:
                ema.step(accelerator.unwrap_model(model).parameters())
            global_step += 1
            speed = images_seen / (time.perf_counter() - t_start)
            logs = {"loss": loss.detach().item(), "lr": lr_scheduler.get_last_lr()[0], "img_per_s": speed}
            if ema is not None:
                logs["ema_decay"] = ema.cur_decay_value
            progress.update(1)
            progress.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{logs['lr']:.2e}", img_s=f"{speed:.1f}")
            accelerator.log(logs, step=global_step)

            if global_step % args.validation_steps == 0 or global_step == max_train_steps:
                validate(global_step)
            if global_step % args.checkpointing_steps == 0 or global_step == max_train_steps:
                checkpoint_and_save(global_step)
            if global_step >= max_train_steps:
                break
    progress.close()
    check_ranks_agree(accelerator, model)

    if accelerator.is_main_process and args.push_to_hub:
        # Pipeline, card and sample grids; checkpoints and logs stay local. Private unless told otherwise.
        push_model_folder(output_dir, args.hub_model_id, private=args.hub_private_repo,
                          commit_message=f"train_ddpm.py: pipeline after {global_step} steps")
    # Free the DDP wrapper before the process group goes: else its Reducer owns the group at
    # interpreter exit, and a rank can deadlock there (medicraft_hf.distributed explains).
    model = optimizer = train_dataloader = lr_scheduler = None
    leave_process_group(accelerator)
    log(f"Done: {global_step} steps; pipeline saved in {output_dir}.")
    return {"global_step": global_step, "images_per_second": speed if images_seen else 0.0}


if __name__ == "__main__":
    run_script(main, "train_ddpm.py")
