"""Train a class-conditional DDPM: runs `accelerate launch training/train_ddpm.py ...`.

Everything after `--` goes to train_ddpm.py unchanged (see `training/README.md`), e.g.

    medicraft train --config_file training/accelerate_configs/single_gpu.yaml -- \
        --dataset_name out/phantom --preset cpu-small --use_ema --resume_from_checkpoint latest

`--dry_run` prints the command instead of running it.
"""

from __future__ import annotations

import argparse

HELP = "train the diffusion model (accelerate launch training/train_ddpm.py)"


def add_arguments(parser) -> None:
    parser.add_argument("--config_file", default=None, help="accelerate config (training/accelerate_configs/*.yaml)")
    parser.add_argument("--num_processes", type=int, default=None, help="processes (GPUs) to launch")
    parser.add_argument("--dry_run", action="store_true", help="print the command, do not run it")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, help="-- then train_ddpm.py flags")


def run(args) -> int:
    import shlex
    import subprocess
    import sys

    from medicraft_hf.training import launch_command

    script_args = args.script_args[1:] if args.script_args[:1] == ["--"] else args.script_args
    cmd = launch_command(script_args, config_file=args.config_file, num_processes=args.num_processes)
    print(shlex.join(cmd))
    if args.dry_run:
        return 0
    return subprocess.call(cmd, stdout=sys.stdout, stderr=sys.stderr)
