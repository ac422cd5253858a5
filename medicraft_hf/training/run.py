"""What every training script's `main()` does around its own loss: the accelerator, the checked
data, resuming, the end-of-run agreement check and the one-line CLI error."""

from __future__ import annotations

import math
import os
import sys
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs, ProjectConfiguration, gather_object

from medicraft_hf.training import checkpoints
from medicraft_hf.training.data import (
    EpochSampler,
    load_dataset_dict,
    restrict_classes,
    select_training_split,
    steps_per_epoch,
    validate_training_dataset,
    with_training_transform,
)


def make_accelerator(args) -> Accelerator:
    output_dir = Path(args.output_dir)
    return Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir),
                                            logging_dir=str(output_dir / args.logging_dir)),
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=args.ddp_timeout))],
    )


def checked_training_split(args, resolution):
    """(dataset, class names, {class: count}); everything wrong with the data fails here, before step 1."""
    dsdict = load_dataset_dict(args.dataset_name, revision=args.dataset_revision)
    train_ds = select_training_split(dsdict, args.train_split, args.dataset_name)
    train_ds, class_names = restrict_classes(train_ds, args.class_names, args.dataset_name)
    counts = validate_training_dataset(train_ds, class_names, resolution, args.dataset_name)
    return train_ds, class_names, {name: counts.get(i, 0) for i, name in enumerate(class_names)}


def training_loader(args, train_ds, resolution, data=None) -> torch.utils.data.DataLoader:
    """Batches of {"pixel_values", "class_labels"} in an order that is a function of (seed, epoch).

    `data`: what the batches hold, row for row of `train_ds` (e.g. its cached latents); default
    its images at `resolution`, as training tensors."""
    sampler = EpochSampler(train_ds["label"], seed=args.seed, class_balanced=args.class_balanced)
    return torch.utils.data.DataLoader(with_training_transform(train_ds, resolution) if data is None else data,
                                       batch_size=args.train_batch_size, sampler=sampler,
                                       num_workers=args.dataloader_num_workers)


def step_plan(args, train_dataloader, accelerator) -> tuple[int, int, int]:
    """(optimizer steps per epoch, total steps, epochs): `--max_train_steps` wins over `--num_epochs`."""
    per_epoch = steps_per_epoch(math.ceil(len(train_dataloader) / accelerator.num_processes),
                                args.gradient_accumulation_steps)
    total = args.max_train_steps or args.num_epochs * per_epoch
    return per_epoch, total, math.ceil(total / per_epoch)


def resume(accelerator, args, *, ema, noise_generator, ema_model_cls=None) -> int:
    """Restore `--resume_from_checkpoint` (if any) into the prepared objects; the step to go on from.

    `ema_model_cls`: the EMA'd model's class (default `UNet2DModel`)."""
    log = accelerator.print
    path = checkpoints.resolve_checkpoint(args.output_dir, args.resume_from_checkpoint)
    if args.resume_from_checkpoint and path is None:
        log("No checkpoint to resume from yet: starting a new run.")
    if path is None:
        return 0
    state = checkpoints.load_checkpoint(accelerator, path, ema=ema, noise_generator=noise_generator,
                                        ema_model_cls=ema_model_cls)
    if state.get("num_processes", accelerator.num_processes) != accelerator.num_processes:
        log(f"Warning: checkpoint made with {state['num_processes']} processes, resuming with "
            f"{accelerator.num_processes}: the data order differs from an uninterrupted run.")
    log(f"Resumed from {path} at step {state['global_step']}.")
    return state["global_step"]


def check_ranks_agree(accelerator, model) -> None:
    """Data-parallel ranks must end with the same weights; a mismatch is a bug, not noise."""
    from medicraft_hf.models import weights_digest

    digests = gather_object([weights_digest(accelerator.unwrap_model(model).state_dict())])
    if len(set(digests)) != 1:
        raise RuntimeError(f"Weights differ between processes: {digests}")
    accelerator.print(f"Weights identical on all {len(digests)} processes (sha256 {digests[0][:16]}).")


def run_script(main, name: str) -> None:
    """Run a script's main(); bad input ends in one `name: error: ...` line (MEDICRAFT_DEBUG=1: traceback)."""
    try:
        main()
    except (ValueError, FileNotFoundError) as err:
        if os.environ.get("MEDICRAFT_DEBUG"):
            raise
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(2)
