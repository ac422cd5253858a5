"""Reusable pieces of `training/train_ddpm.py`: data, sampler, checkpoints, validation."""

from __future__ import annotations

import sys
from pathlib import Path

# The training script lives beside the package in a source checkout (it is meant to be read).
TRAIN_SCRIPT = Path(__file__).resolve().parents[2] / "training" / "train_ddpm.py"


def launch_command(script_args: list[str], config_file: str | None = None,
                   num_processes: int | None = None) -> list[str]:
    """The `accelerate launch ... train_ddpm.py ...` command line as a list."""
    if not TRAIN_SCRIPT.is_file():
        raise FileNotFoundError(f"{TRAIN_SCRIPT} is missing: training runs from a source checkout of "
                                "medicraft-hf (git clone, then pip install -e .).")
    if config_file is not None and not Path(config_file).is_file():
        raise FileNotFoundError(f"accelerate config {config_file} does not exist; see training/accelerate_configs/.")
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if config_file:
        cmd += ["--config_file", str(config_file)]
    if num_processes:
        cmd += ["--num_processes", str(num_processes)]
    return cmd + [str(TRAIN_SCRIPT), *script_args]
