"""Flags every training script shares (`train_ddpm.py`'s names, from diffusers' examples).

A script adds the groups it needs and overrides defaults with `parser.set_defaults(...)`.
"""

from __future__ import annotations

import argparse


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset_name", required=True, help="Hub dataset id or local folder (parquet/Hub layout, "
                   "save_to_disk, or <root>/<class>/*.png).")
    p.add_argument("--dataset_revision", default=None)
    p.add_argument("--train_split", default="train")
    p.add_argument("--class_names", default=None, help="Comma-separated classes, in label order "
                   "(default: all classes of the dataset).")
    p.add_argument("--class_balanced", action="store_true", help="Draw every class equally often.")
    p.add_argument("--dataloader_num_workers", type=int, default=0)
    p.add_argument("--ddp_timeout", type=int, default=1800,
                   help="Seconds a collective waits for the other ranks before the run fails.")


def add_optimization_arguments(p: argparse.ArgumentParser, output_dir: str | None = None) -> None:
    """`output_dir`: its default; without one the flag is required."""
    p.add_argument("--output_dir", required=output_dir is None, default=output_dir)
    p.add_argument("--overwrite_output_dir", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train_batch_size", type=int, default=16, help="Per device.")
    p.add_argument("--num_epochs", type=int, default=100)
    p.add_argument("--max_train_steps", type=int, default=None, help="Overrides --num_epochs.")
    p.add_argument("--gradient_accumulation_steps", type=int, default=1)
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--lr_scheduler", default="cosine",
                   help='"linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"')
    p.add_argument("--lr_warmup_steps", type=int, default=500)
    p.add_argument("--adam_beta1", type=float, default=0.95)
    p.add_argument("--adam_beta2", type=float, default=0.999)
    p.add_argument("--adam_weight_decay", type=float, default=1e-6)
    p.add_argument("--adam_epsilon", type=float, default=1e-8)
    p.add_argument("--max_grad_norm", type=float, default=1.0)
    p.add_argument("--use_ema", action="store_true", help="Keep an EMA of the weights; the saved model holds it.")
    p.add_argument("--ema_max_decay", type=float, default=0.9999)
    p.add_argument("--mixed_precision", default=None, choices=["no", "fp16", "bf16"],
                   help="Default: the accelerate config's.")


def add_checkpoint_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpointing_steps", type=int, default=500)
    p.add_argument("--checkpoints_total_limit", type=int, default=None)
    p.add_argument("--resume_from_checkpoint", default=None, help='"latest" or a checkpoint folder.')
    p.add_argument("--validation_steps", type=int, default=500, help="Save a per-class sample grid every N steps.")
    p.add_argument("--num_validation_images", type=int, default=4, help="Per class.")
    p.add_argument("--validation_inference_steps", type=int, default=20)
    p.add_argument("--report_to", default="none", choices=["tensorboard", "wandb", "none"])
    p.add_argument("--logging_dir", default="logs", help="Under --output_dir.")
    p.add_argument("--push_to_hub", action="store_true")
    p.add_argument("--hub_model_id", default=None)
    p.add_argument("--hub_private_repo", action=argparse.BooleanOptionalAction, default=True,
                   help="Push as a private repo (default); --no-hub_private_repo makes it public.")


def check_common_arguments(p: argparse.ArgumentParser, args) -> None:
    """Checks of the shared flags (`p.error` exits with the usage line); splits --class_names."""
    if args.class_names:
        args.class_names = [c.strip() for c in args.class_names.split(",") if c.strip()]
    for name in ("train_batch_size", "gradient_accumulation_steps", "checkpointing_steps", "validation_steps",
                 "validation_inference_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1.")
    if args.push_to_hub and not args.hub_model_id:
        p.error("--push_to_hub needs --hub_model_id (e.g. my-org/oct-ddpm).")
