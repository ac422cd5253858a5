#!/usr/bin/env python
"""Train a one-channel AutoencoderKL on OCT B-scans, the first stage of latent diffusion.

    accelerate launch training/train_vae.py \
        --dataset_name out/phantom-256x512 --preset f4c4 --resolution 256x512 --crop_size 128x128 \
        --train_batch_size 8 --max_train_steps 4000 --use_ema --checkpointing_steps 250 \
        --resume_from_checkpoint latest --output_dir vae-oct

Flags are `train_ddpm.py`'s (data, optimization, EMA, checkpoints, validation, Hub), plus the
VAE preset (`medicraft_hf.vae.VAE_PRESETS`), random training crops and the loss weights:
L1 + `--fft_weight` x FFT log-magnitude + `--hist_weight` x intensity histogram + `--kl_weight` x KL + (from `--disc_start`)
`--disc_weight` x a PatchGAN's hinge loss (`medicraft_hf.training.autoencoder` says why these
replace a perceptual loss). The saved VAE (`output_dir`, EMA weights with `--use_ema`, its
`scaling_factor` measured on the training images) loads with `AutoencoderKL.from_pretrained`
and trains a latent UNet with `train_ddpm.py --vae output_dir`.

Distilling a fast decoder: a `taesd-*` preset with `--teacher_vae <trained VAE or latent
pipeline>` trains a diffusers `AutoencoderTiny` whose decoder decodes the teacher's latents (L1,
FFT and optional PatchGAN losses as above) and whose encoder predicts them (`--encoder_weight`
x MSE, in place of the KL term). It keeps the teacher's scaling factor, so it replaces the
teacher in a latent pipeline as is (`OCTDiffusionPipeline.with_vae`).
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from medicraft_hf.cards.vae_card import vae_card
from medicraft_hf.distributed import leave_process_group
from medicraft_hf.hub import push_model_folder
from medicraft_hf.io import atomic_path
from medicraft_hf.parsing import parse_resolution
from medicraft_hf.pipeline import vae_scale_factor
from medicraft_hf.sources import public_name
from medicraft_hf.training import checkpoints
from medicraft_hf.training.arguments import (
    add_checkpoint_arguments,
    add_data_arguments,
    add_optimization_arguments,
    check_common_arguments,
)
from medicraft_hf.training.autoencoder import (
    DistilledAutoencoder,
    PatchDiscriminator,
    ReconstructionModel,
    fft_magnitude_loss,
    grid_images,
    hinge_discriminator_loss,
    histogram_loss,
    latent_scaling_factor,
    psnr,
    random_crops,
    reconstruct,
    reconstruction_grid,
)
from medicraft_hf.training.data import load_dataset_dict, select_training_split, with_training_transform
from medicraft_hf.training.latents import load_vae
from medicraft_hf.training.output_dir import latest_grid, prepare_output_dir, save_pipeline_folder
from medicraft_hf.training.run import (
    check_ranks_agree,
    checked_training_split,
    make_accelerator,
    resume,
    run_script,
    step_plan,
    training_loader,
)
from medicraft_hf.training.validation import log_grid
from medicraft_hf.vae import ALL_PRESETS, TINY_PRESETS, build_vae, check_divisible, is_tiny, raw_latents

RUN_IDENTITY = (
    "dataset_name", "dataset_revision", "train_split", "class_names", "class_balanced", "preset", "resolution",
    "crop_size", "train_batch_size", "gradient_accumulation_steps", "learning_rate", "lr_scheduler",
    "lr_warmup_steps", "adam_beta1", "adam_beta2", "adam_weight_decay", "adam_epsilon", "max_grad_norm", "use_ema",
    "ema_max_decay", "kl_weight", "fft_weight", "hist_weight", "disc_weight", "disc_start", "seed", "teacher_vae",
    "encoder_weight",
)
SCALING_IMAGES = 16  # training images whose latents set the scaling factor (each costs a full-size encode)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(p)
    p.add_argument("--validation_split", default=None,
                   help="Images of the validation grid and PSNR (default: 'validation' if the dataset has it, "
                        "else the training split).")
    # model and losses
    p.add_argument("--preset", default="f4c4", choices=ALL_PRESETS,
                   help="VAE shape (f<factor>c<channels>; taesd-*: an AutoencoderTiny, needs --teacher_vae).")
    p.add_argument("--teacher_vae", default=None,
                   help="A trained AutoencoderKL (folder, Hub id or latent pipeline) whose latents a taesd-* preset "
                        "learns to decode and predict.")
    p.add_argument("--encoder_weight", type=float, default=1.0,
                   help="taesd-*: weight of the encoder's MSE to the teacher's latents.")
    p.add_argument("--resolution", default="256x512", help="HxW the images are resized to.")
    p.add_argument("--crop_size", default=None,
                   help="HxW random crops to train on (the VAE is fully convolutional; default: whole images).")
    p.add_argument("--kl_weight", type=float, default=1e-6)
    p.add_argument("--fft_weight", type=float, default=1.0, help="FFT log-magnitude loss (texture, speckle).")
    p.add_argument("--hist_weight", type=float, default=0.0,
                   help="Intensity-histogram loss weight (sorted pixels, W1): keeps the speckle's brightness spread.")
    p.add_argument("--disc_weight", type=float, default=0.0, help="PatchGAN adversarial loss weight (0: off).")
    p.add_argument("--disc_start", type=int, default=0, help="Step from which the discriminator trains and counts.")
    add_optimization_arguments(p)
    add_checkpoint_arguments(p)
    p.set_defaults(output_dir="vae-oct", train_batch_size=8, learning_rate=2e-4, lr_warmup_steps=100, adam_beta1=0.9,
                   ema_max_decay=0.999)
    args = p.parse_args(argv)
    check_common_arguments(p, args)
    args.resolution = "x".join(map(str, parse_resolution(args.resolution)))
    if args.crop_size:
        args.crop_size = "x".join(map(str, parse_resolution(args.crop_size)))
    if (args.preset in TINY_PRESETS) != bool(args.teacher_vae):
        p.error(f"--preset {args.preset} " + ("is distilled: give --teacher_vae, the AutoencoderKL whose latents it "
                                              "learns." if args.preset in TINY_PRESETS else
                                              "trains from scratch; --teacher_vae is for the taesd-* presets."))
    for name in ("kl_weight", "fft_weight", "hist_weight", "disc_weight", "encoder_weight"):
        if not (math.isfinite(getattr(args, name)) and getattr(args, name) >= 0):
            p.error(f"--{name} must be a number >= 0, got {getattr(args, name)}.")
    return args


def check_sizes(args, vae) -> tuple[int, int]:
    """The crop (or the whole image) must fit the image and be divisible by the VAE's factor."""
    height, width = parse_resolution(args.resolution)
    check_divisible(args.resolution, vae)
    crop = parse_resolution(args.crop_size) if args.crop_size else (height, width)
    if crop[0] > height or crop[1] > width:
        raise ValueError(f"--crop_size {args.crop_size} is larger than --resolution {args.resolution}.")
    check_divisible(args.crop_size or args.resolution, vae, what="--crop_size")
    return crop


def check_teacher(args, student, teacher) -> None:
    """The student must produce the teacher's latents: same channels and factor."""
    if is_tiny(teacher):
        raise ValueError(f"--teacher_vae {args.teacher_vae} is itself an AutoencoderTiny; distil from the AutoencoderKL.")
    if (teacher.config.latent_channels, vae_scale_factor(teacher)) != (student.config.latent_channels, vae_scale_factor(student)):
        raise ValueError(f"--preset {args.preset} makes {student.config.latent_channels} latent channels at "
                         f"{vae_scale_factor(student)}x per side, --teacher_vae {args.teacher_vae} "
                         f"{teacher.config.latent_channels} at {vae_scale_factor(teacher)}x; choose a preset that matches.")


def main(argv=None):
    args = parse_args(argv)
    output_dir = Path(args.output_dir)
    resolution = parse_resolution(args.resolution)
    accelerator = make_accelerator(args)
    log = accelerator.print

    # ---- data and shapes: everything that can be wrong fails here, before step 1
    train_ds, class_names, _ = checked_training_split(args, resolution)
    args.class_names = class_names
    dsdict = load_dataset_dict(args.dataset_name, revision=args.dataset_revision)
    val_split = args.validation_split or ("validation" if "validation" in dsdict else args.train_split)
    val_ds = select_training_split(dsdict, val_split, args.dataset_name)
    set_seed(args.seed)
    vae = build_vae(args.preset, resolution)
    crop = check_sizes(args, vae)
    teacher = load_vae(args.teacher_vae).to(accelerator.device) if args.teacher_vae else None
    if teacher is not None:
        check_teacher(args, vae, teacher)
    identity = {k: getattr(args, k) for k in RUN_IDENTITY}
    prepare_output_dir(accelerator, output_dir, identity, overwrite=args.overwrite_output_dir,
                       resume=args.resume_from_checkpoint)
    log(f"Training a {args.preset} VAE on {len(train_ds)} images of {args.dataset_name}[{args.train_split}], "
        f"{args.resolution} (HxW), crops {crop[0]}x{crop[1]}; validation on [{val_split}].")

    train_dataloader = training_loader(args, train_ds, resolution)
    val_images = grid_images(with_training_transform(val_ds, resolution), args.num_validation_images)
    scaling_images = grid_images(with_training_transform(train_ds, resolution), SCALING_IMAGES)

    # ---- models and optimizers
    use_disc = args.disc_weight > 0
    disc = PatchDiscriminator() if use_disc else None
    ema = None
    if args.use_ema:
        ema = EMAModel(vae.parameters(), decay=args.ema_max_decay, use_ema_warmup=True, model_cls=type(vae),
                       model_config=vae.config)

    def adam(params):
        return torch.optim.AdamW(params, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                 weight_decay=args.adam_weight_decay, eps=args.adam_epsilon)

    optimizer = adam(vae.parameters())
    num_update_steps_per_epoch, max_train_steps, num_epochs = step_plan(args, train_dataloader, accelerator)
    lr_scheduler = get_scheduler(args.lr_scheduler, optimizer=optimizer,
                                 num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=max_train_steps * accelerator.num_processes)
    # Encode, sample and decode in one forward, so data-parallel training sees every parameter.
    model, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
        DistilledAutoencoder(vae) if teacher is not None else ReconstructionModel(vae), optimizer, train_dataloader,
        lr_scheduler)
    models = [model]
    if use_disc:
        disc_optimizer = adam(disc.parameters())
        disc, disc_optimizer = accelerator.prepare(disc, disc_optimizer)
        models.append(disc)
    latent_channels, factor = vae.config.latent_channels, vae_scale_factor(vae)
    # The term beside the reconstruction losses: the KL, or a distilled encoder's MSE to the teacher's latents.
    penalty_name, penalty_weight = ("encoder_mse", args.encoder_weight) if teacher is not None else ("kl", args.kl_weight)
    if ema is not None:
        ema.to(accelerator.device)
    # Crops and posterior samples come from this generator (one stream per rank), saved in checkpoints.
    noise_generator = torch.Generator().manual_seed(args.seed * 1000 + accelerator.process_index)
    if accelerator.is_main_process and args.report_to != "none":
        accelerator.init_trackers("train_vae", config={k: v if isinstance(v, (int, float, str, bool)) else str(v)
                                                        for k, v in vars(args).items()})

    # ---- resume
    global_step = resume(accelerator, args, ema=ema, noise_generator=noise_generator, ema_model_cls=type(vae))
    first_epoch = global_step // num_update_steps_per_epoch
    skip_batches = (global_step % num_update_steps_per_epoch) * args.gradient_accumulation_steps
    log(f"{sum(p.numel() for p in vae.parameters()) / 1e6:.2f}M VAE parameters; {max_train_steps} steps, "
        f"{num_epochs} epochs, batch {args.train_batch_size * accelerator.num_processes}"
        f" x {args.gradient_accumulation_steps} accumulation.")

    def inference_vae():
        """A copy of the VAE (EMA weights if any) with its scaling factor measured (a distilled one's: its teacher's)."""
        copied = copy.deepcopy(vae).float().eval()
        if ema is not None:
            ema.copy_to(copied.parameters())
        if teacher is not None:
            copied.register_to_config(scaling_factor=teacher.config.scaling_factor,
                                      shift_factor=teacher.config.shift_factor or 0.0)
        else:
            copied.register_to_config(scaling_factor=latent_scaling_factor(copied, scaling_images))
        return copied

    def validate(step):
        if accelerator.is_main_process:
            trained = inference_vae()
            recon = reconstruct(trained, val_images, encoder=teacher)
            grid = reconstruction_grid(val_images, recon)
            with atomic_path(output_dir / "samples" / f"step_{step:07d}.png") as tmp:
                grid.save(tmp)
            log_grid(accelerator, grid, step, tag="reconstructions")
            value = psnr(recon, val_images).mean().item()
            scale = trained.config.scaling_factor
            accelerator.log({"val_psnr": value, "scaling_factor": scale}, step=step)
            log(f"step {step}: validation PSNR {value:.2f} dB, scaling factor {scale:.4f}")
        accelerator.wait_for_everyone()

    def checkpoint_and_save(step):
        checkpoints.save_checkpoint(accelerator, output_dir, step, ema=ema, noise_generator=noise_generator,
                                    total_limit=args.checkpoints_total_limit,
                                    state={"num_processes": accelerator.num_processes, "max_train_steps": max_train_steps,
                                           "run": identity})
        if accelerator.is_main_process:
            trained = inference_vae()
            card = vae_card(preset=args.preset, resolution=resolution, crop=crop, train_steps=step,
                            dataset_name=public_name(args.dataset_name), scaling_factor=trained.config.scaling_factor,
                            use_ema=args.use_ema, sample_grid=latest_grid(output_dir),
                            losses={"l1": 1.0, "fft": args.fft_weight, "histogram": args.hist_weight,
                                    **({"encoder_mse": args.encoder_weight} if teacher is not None else
                                       {"kl": args.kl_weight}),
                                    "patch_gan": args.disc_weight}, model_id=args.hub_model_id,
                            teacher=public_name(args.teacher_vae) if teacher is not None else None)
            save_pipeline_folder(trained, card, output_dir)
        accelerator.wait_for_everyone()

    # ---- train
    progress = tqdm(total=max_train_steps, initial=global_step, desc="train_vae", unit="step",
                    disable=not accelerator.is_local_main_process, dynamic_ncols=True)
    model.train()
    images_seen, speed, t_start = 0, 0.0, time.perf_counter()
    for epoch in range(first_epoch, num_epochs):
        if global_step >= max_train_steps:
            break
        train_dataloader.set_epoch(epoch)
        loader = train_dataloader
        if epoch == first_epoch and skip_batches:
            loader = accelerator.skip_first_batches(train_dataloader, skip_batches)
        for batch in loader:
            x = random_crops(batch["pixel_values"], crop, noise_generator).to(accelerator.device)
            adversarial = use_disc and global_step >= args.disc_start
            if teacher is not None:  # the distilled decoder's input: the teacher's latents of these crops
                with torch.no_grad():
                    second = raw_latents(teacher, x)
            else:  # the posterior sample's noise
                second = torch.randn((x.shape[0], latent_channels, x.shape[2] // factor, x.shape[3] // factor),
                                     generator=noise_generator).to(x)
            with accelerator.accumulate(*models):
                recon, penalty = model(x, second)
                l1 = F.l1_loss(recon.float(), x.float())
                fft = fft_magnitude_loss(recon, x)
                loss = l1 + args.fft_weight * fft + penalty_weight * penalty
                if args.hist_weight:
                    hist = histogram_loss(recon, x)
                    loss = loss + args.hist_weight * hist
                if adversarial:
                    # The discriminator judges, it does not learn from this loss: frozen, unwrapped.
                    judge = accelerator.unwrap_model(disc)
                    judge.requires_grad_(False)
                    loss = loss - args.disc_weight * judge(recon).float().mean()
                    judge.requires_grad_(True)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
                if adversarial:
                    d_loss = hinge_discriminator_loss(disc(x).float(), disc(recon.detach()).float())
                    accelerator.backward(d_loss)
                    disc_optimizer.step()
                    disc_optimizer.zero_grad()
            images_seen += x.shape[0] * accelerator.num_processes

            if not accelerator.sync_gradients:
                continue
            if ema is not None:
                ema.step(vae.parameters())
            global_step += 1
            speed = images_seen / (time.perf_counter() - t_start)
            logs = {"loss": loss.detach().item(), "l1": l1.item(), "fft": fft.item(), penalty_name: penalty.item(),
                    "lr": lr_scheduler.get_last_lr()[0], "img_per_s": speed}
            if args.hist_weight:
                logs["histogram"] = hist.item()
            if adversarial:
                logs["d_loss"] = d_loss.item()
            progress.update(1)
            progress.set_postfix(l1=f"{logs['l1']:.4f}", fft=f"{logs['fft']:.4f}", img_s=f"{speed:.2f}")
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
        push_model_folder(output_dir, args.hub_model_id, private=args.hub_private_repo,
                          commit_message=f"train_vae.py: VAE after {global_step} steps")
    model = models = disc = optimizer = train_dataloader = lr_scheduler = None
    leave_process_group(accelerator)
    log(f"Done: {global_step} steps; VAE saved in {output_dir}.")
    return {"global_step": global_step, "images_per_second": speed if images_seen else 0.0}


if __name__ == "__main__":
    run_script(main, "train_vae.py")
