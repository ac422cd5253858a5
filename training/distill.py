#!/usr/bin/env python
"""Distill a trained class-conditional OCT DDPM into a 1-4-step generator (consistency distillation).

    accelerate launch training/distill.py \
        --pretrained_teacher_model medicraft_hf/demo_model --dataset_name out/phantom-64x128 \
        --train_batch_size 8 --max_train_steps 2000 --use_ema --checkpointing_steps 100 \
        --resume_from_checkpoint latest --output_dir ddpm-oct-fast

The student starts from the teacher's weights and learns the teacher's ODE in the
latent-consistency-model form (`medicraft_hf.training.distillation`). Flags are
`train_ddpm.py`'s, plus the teacher, its DDIM grid (`--num_ddim_timesteps`), the teacher's
guidance (`--guidance_scale`, distilled in) and the loss. With `--use_ema` the target network is
an EMA of the student (decay `--ema_max_decay`, LCM's 0.95) and the saved pipeline holds it.
The saved pipeline (`OCTDiffusionPipeline` + `LCMScheduler`) samples in 1-4 steps and loads
with `medicraft_hf.models.load_pipeline(output_dir)` or plain diffusers (`custom_pipeline=`).
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import torch
from accelerate.utils import set_seed
from diffusers import UNet2DModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from medicraft_hf.cards.distilled_card import distilled_model_card
from medicraft_hf.distributed import leave_process_group
from medicraft_hf.hub import push_model_folder
from medicraft_hf.io import atomic_path
from medicraft_hf.models import load_pipeline
from medicraft_hf.parsing import parse_resolution
from medicraft_hf.pipeline import OCTDiffusionPipeline
from medicraft_hf.sources import is_hub_id, public_name
from medicraft_hf.training import checkpoints
from medicraft_hf.training.arguments import (
    add_checkpoint_arguments,
    add_data_arguments,
    add_optimization_arguments,
    check_common_arguments,
)
from medicraft_hf.training.distillation import ConsistencyDistiller, few_step_scheduler
from medicraft_hf.training.latents import encoded_dataset, load_vae
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
from medicraft_hf.training.validation import log_grid, sample_grid

RUN_IDENTITY = (
    "pretrained_teacher_model", "dataset_name", "dataset_revision", "train_split", "class_names", "resolution",
    "train_batch_size", "gradient_accumulation_steps", "learning_rate", "lr_scheduler", "lr_warmup_steps",
    "adam_beta1", "adam_beta2", "adam_weight_decay", "adam_epsilon", "max_grad_norm", "use_ema", "ema_max_decay",
    "cfg_dropout_prob", "class_balanced", "num_ddim_timesteps", "guidance_scale", "loss_type", "huber_c", "seed",
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pretrained_teacher_model", required=True,
                   help="Saved OCTDiffusionPipeline (folder or Hub id) to distill; the student starts from it.")
    p.add_argument("--num_ddim_timesteps", type=int, default=50,
                   help="The teacher's DDIM grid: each distillation target is one step of it (k = 1000 / N).")
    p.add_argument("--guidance_scale", type=float, default=1.0,
                   help="The teacher's classifier-free guidance, distilled in (1.0: plain conditional, one teacher "
                        "call per step).")
    p.add_argument("--loss_type", default="huber", choices=["huber", "l2"])
    p.add_argument("--huber_c", type=float, default=0.001)
    p.add_argument("--cfg_dropout_prob", type=float, default=0.1,
                   help="Probability of replacing a label by the null class: the student keeps an unconditional mode.")
    p.add_argument("--resolution", default=None, help="HxW (default and only choice: the teacher's).")
    add_data_arguments(p)
    add_optimization_arguments(p)
    add_checkpoint_arguments(p)
    # A fine-tune of a trained model: low constant learning rate; the EMA is LCM's target network (0.95).
    p.set_defaults(output_dir="ddpm-oct-fast", train_batch_size=8, num_epochs=10, learning_rate=2e-5,
                   lr_scheduler="constant_with_warmup", lr_warmup_steps=50, adam_beta1=0.9, adam_weight_decay=0.0,
                   ema_max_decay=0.95, checkpointing_steps=100, validation_steps=100, validation_inference_steps=4)
    args = p.parse_args(argv)
    check_common_arguments(p, args)
    if not 0 <= args.cfg_dropout_prob < 1:
        p.error(f"--cfg_dropout_prob must be in [0, 1), got {args.cfg_dropout_prob}.")
    if not (math.isfinite(args.guidance_scale) and args.guidance_scale >= 0):
        p.error(f"--guidance_scale must be a number >= 0, got {args.guidance_scale}.")
    if args.num_ddim_timesteps < 1:
        p.error("--num_ddim_timesteps must be >= 1.")
    if args.validation_inference_steps > args.num_ddim_timesteps:
        p.error(f"--validation_inference_steps ({args.validation_inference_steps}) cannot exceed "
                f"--num_ddim_timesteps ({args.num_ddim_timesteps}).")
    return args


def run_identity(args) -> dict:
    return {k: getattr(args, k) for k in RUN_IDENTITY}


def load_teacher(args):
    """The teacher pipeline; its classes and size fix the run's, checked before anything is written."""
    source = str(args.pretrained_teacher_model)
    if not is_hub_id(source) and not Path(source).is_dir():
        raise FileNotFoundError(f"--pretrained_teacher_model {source}: no such folder, and not a Hub model id "
                                "(org/name); give a saved pipeline folder (e.g. medicraft_hf/demo_model).")
    teacher = load_pipeline(source)
    if args.class_names and list(args.class_names) != list(teacher.class_names):
        raise ValueError(f"--pretrained_teacher_model {args.pretrained_teacher_model} knows classes "
                         f"{teacher.class_names}, --class_names asks for {args.class_names}; the student keeps the "
                         "teacher's classes (leave --class_names out).")
    size = "x".join(map(str, teacher.image_size))
    if args.resolution and tuple(parse_resolution(args.resolution)) != tuple(teacher.image_size):
        raise ValueError(f"--pretrained_teacher_model {args.pretrained_teacher_model} makes {size} images, "
                         f"--resolution asks for {args.resolution}; pass --resolution {size} or leave it out.")
    if teacher.scheduler.config.get("prediction_type") not in ("epsilon", "v_prediction"):
        raise ValueError(f"--pretrained_teacher_model {args.pretrained_teacher_model}: prediction_type "
                         f"{teacher.scheduler.config.get('prediction_type')!r} is not supported.")
    args.resolution = size
    args.class_names = list(teacher.class_names)
    return teacher


def student_pipeline(accelerator, model, ema, scheduler_config, num_ddim, class_names,
                     vae=None) -> OCTDiffusionPipeline:
    """An inference pipeline on a copy of the student, holding the EMA weights when there are any
    (and the teacher's VAE, for a latent teacher)."""
    unet = copy.deepcopy(accelerator.unwrap_model(model)).float().eval()
    if ema is not None:
        ema.copy_to(unet.parameters())
    pipe = OCTDiffusionPipeline(unet=unet, scheduler=few_step_scheduler(scheduler_config, num_ddim,
                                                                        latent=vae is not None),
                                class_names=class_names, vae=vae)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main(argv=None):
    args = parse_args(argv)
    output_dir = Path(args.output_dir)
    accelerator = make_accelerator(args)
    log = accelerator.print

    # ---- teacher and data: everything that can be wrong fails here, before step 1
    teacher_pipe = load_teacher(args)
    resolution = parse_resolution(args.resolution)
    train_ds, class_names, class_counts = checked_training_split(args, resolution)
    args.pretrained_teacher_model = str(args.pretrained_teacher_model)
    prepare_output_dir(accelerator, output_dir, run_identity(args), overwrite=args.overwrite_output_dir,
                       resume=args.resume_from_checkpoint)
    log(f"Distilling {public_name(args.pretrained_teacher_model)} on {len(train_ds)} images of "
        f"{args.dataset_name}[{args.train_split}], {args.resolution} (HxW), {args.num_ddim_timesteps}-step "
        f"DDIM teacher grid, guidance {args.guidance_scale}.")

    # A latent teacher: the student learns on its VAE's latents of the images (encoded once, cached).
    vae = load_vae(args.pretrained_teacher_model) if teacher_pipe.vae is not None else None
    data = encoded_dataset(accelerator, train_ds, resolution, vae, output_dir) if vae is not None else None
    train_dataloader = training_loader(args, train_ds, resolution, data)

    # ---- student (from the teacher), target, teacher, optimizer
    set_seed(args.seed)
    teacher = teacher_pipe.unet.eval().requires_grad_(False)
    config = {k: v for k, v in teacher.config.items() if k != "_name_or_path"}  # no local path in the student
    model = UNet2DModel.from_config(config)
    model.load_state_dict(teacher.state_dict())
    model.train()
    target = UNet2DModel.from_config(config).requires_grad_(False)
    target.load_state_dict(teacher.state_dict())
    scheduler_config = teacher_pipe.scheduler.config
    distiller = ConsistencyDistiller(few_step_scheduler(scheduler_config, args.num_ddim_timesteps, latent=vae is not None),
                                     null_class_id=len(class_names), guidance_scale=args.guidance_scale,
                                     loss_type=args.loss_type, huber_c=args.huber_c, clip_x0=vae is None)
    ema = None
    if args.use_ema:  # a constant decay after a short ramp, as the target network of LCM
        ema = EMAModel(model.parameters(), decay=args.ema_max_decay, use_ema_warmup=False,
                       model_cls=UNet2DModel, model_config=model.config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  weight_decay=args.adam_weight_decay, eps=args.adam_epsilon)

    num_update_steps_per_epoch, max_train_steps, num_epochs = step_plan(args, train_dataloader, accelerator)
    lr_scheduler = get_scheduler(args.lr_scheduler, optimizer=optimizer,
                                 num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=max_train_steps * accelerator.num_processes)
    model, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(model, optimizer, train_dataloader,
                                                                           lr_scheduler)
    teacher.to(accelerator.device)
    target.to(accelerator.device)
    distiller.to(accelerator.device)
    if ema is not None:
        ema.to(accelerator.device)
    # Noise, grid positions and label drops come from this generator (one stream per rank), saved in checkpoints.
    noise_generator = torch.Generator().manual_seed(args.seed * 1000 + accelerator.process_index)

    if accelerator.is_main_process and args.report_to != "none":
        accelerator.init_trackers("distill", config={k: v if isinstance(v, (int, float, str, bool)) else str(v)
                                                      for k, v in vars(args).items()})

    def sync_target():
        """The target network: the EMA of the student, or the student itself (no gradient)."""
        if ema is not None:
            ema.copy_to(target.parameters())
        else:
            target.load_state_dict(accelerator.unwrap_model(model).state_dict())

    # ---- resume
    global_step = resume(accelerator, args, ema=ema, noise_generator=noise_generator)
    sync_target()
    first_epoch = global_step // num_update_steps_per_epoch
    skip_batches = (global_step % num_update_steps_per_epoch) * args.gradient_accumulation_steps

    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    log(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; {max_train_steps} steps, batch "
        f"{total_batch}; {3 if args.guidance_scale == 1.0 else 4} UNet calls per image and step.")

    def save_pipeline(step):
        pipe = student_pipeline(accelerator, model, ema, scheduler_config, args.num_ddim_timesteps, class_names, vae)
        card = distilled_model_card(
            class_names=class_names, resolution=resolution, train_steps=step,
            teacher=public_name(args.pretrained_teacher_model), dataset_name=public_name(args.dataset_name),
            class_counts=class_counts, num_ddim_timesteps=args.num_ddim_timesteps,
            guidance_scale=args.guidance_scale, use_ema=args.use_ema, sample_grid=latest_grid(output_dir),
            training_args={k: public_name(v) if k in ("dataset_name", "output_dir", "pretrained_teacher_model") else v
                           for k, v in vars(args).items() if not k.startswith("hub_")},
            model_id=args.hub_model_id, latent=vae is not None,
        )
        save_pipeline_folder(pipe, str(card), output_dir)

    def checkpoint_and_save(step):
        checkpoints.save_checkpoint(accelerator, output_dir, step, ema=ema, noise_generator=noise_generator,
                                    total_limit=args.checkpoints_total_limit,
                                    state={"num_processes": accelerator.num_processes, "class_names": class_names,
                                           "max_train_steps": max_train_steps, "run": run_identity(args)})
        if accelerator.is_main_process:
            save_pipeline(step)
        accelerator.wait_for_everyone()

    def validate(step):
        if accelerator.is_main_process:
            pipe = student_pipeline(accelerator, model, ema, scheduler_config, args.num_ddim_timesteps, class_names,
                                    vae)
            grid = sample_grid(pipe, per_class=args.num_validation_images, seed=args.seed,
                               num_inference_steps=args.validation_inference_steps)
            with atomic_path(output_dir / "samples" / f"step_{step:07d}.png") as tmp:
                grid.save(tmp)
            log_grid(accelerator, grid, step)
        accelerator.wait_for_everyone()

    # ---- distill
    progress = tqdm(total=max_train_steps, initial=global_step, desc="distill", unit="step",
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
            noise, index = distiller.draw(clean, noise_generator)
            drop = (torch.rand(bsz, generator=noise_generator) < args.cfg_dropout_prob).to(clean.device)
            labels = torch.where(drop, torch.full_like(labels, distiller.null_class_id), labels)
            t, prev_t = distiller.timesteps(index)
            noisy = distiller.noisy(clean, noise, t)
            with torch.no_grad(), accelerator.autocast():
                x_prev = distiller.teacher_step(teacher, noisy, t, prev_t, labels)
                goal = distiller.consistency(target(x_prev, prev_t, class_labels=labels).sample.float(), x_prev,
                                             prev_t)
            with accelerator.accumulate(model):
                prediction = distiller.consistency(model(noisy, t, class_labels=labels).sample.float(), noisy, t)
                loss = distiller.loss(prediction, goal)
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
            sync_target()
            global_step += 1
            speed = images_seen / (time.perf_counter() - t_start)
            logs = {"loss": loss.detach().item(), "lr": lr_scheduler.get_last_lr()[0], "img_per_s": speed}
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
        push_model_folder(output_dir, args.hub_model_id, private=args.hub_private_repo,
                          commit_message=f"distill.py: {global_step} distillation steps")
    model = optimizer = train_dataloader = lr_scheduler = None  # free the DDP wrapper first (see train_ddpm.py)
    leave_process_group(accelerator)
    log(f"Done: {global_step} steps; few-step pipeline saved in {output_dir}.")
    return {"global_step": global_step, "images_per_second": speed if images_seen else 0.0}


if __name__ == "__main__":
    run_script(main, "distill.py")
