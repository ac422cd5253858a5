"""Checkpoints that a kill can never leave half-written under a name `latest` picks up.

Layout of `<output_dir>/checkpoint-<step>/` (stable: resuming old runs depends on it):
    model.safetensors, optimizer.bin, scheduler.bin, random_states_<rank>.pkl   (accelerate)
    unet_ema/                      EMA weights (diffusers `EMAModel.save_pretrained`; the VAE's too)
    noise_rng_<rank>.safetensors   the generator that draws noise, timesteps and label drops
    training_state.json            written last; a folder without it is not a checkpoint

Every rank writes into `.checkpoint-<step>.tmp/`; after a barrier the main process writes
`training_state.json` and renames the folder. A kill before the rename leaves only a
hidden `.tmp` folder, which the next save removes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from medicraft_hf.io import fsync_dir, write_json_atomic

STATE_FILE = "training_state.json"
EMA_DIR = "unet_ema"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def list_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints as (step, path), oldest first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = []
    for path in output_dir.iterdir():
        match = _NAME.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def resolve_checkpoint(output_dir: str | os.PathLike, value: str | None) -> Path | None:
    """`--resume_from_checkpoint`: 'latest' (None when there is none yet) or a checkpoint path/name."""
    if value is None:
        return None
    if value == "latest":
        return latest_checkpoint(output_dir)
    path = Path(value)
    if not path.is_absolute() and not path.exists():
        path = Path(output_dir) / value
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"--resume_from_checkpoint {value}: {path} is not a complete checkpoint "
                                f"(no {STATE_FILE}); use 'latest' or one of "
                                f"{[p.name for _, p in list_checkpoints(output_dir)]}.")
    return path


def save_checkpoint(accelerator, output_dir, step: int, *, ema=None, noise_generator: torch.Generator,
                    state: dict, total_limit: int | None = None) -> Path:
    """Save the full training state at `step`; call on every process."""
    output_dir = Path(output_dir)
    final = output_dir / f"checkpoint-{step}"
    tmp = output_dir / f".checkpoint-{step}.tmp"
    if accelerator.is_main_process:
        _remove_partial(output_dir)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    save_file({"state": noise_generator.get_state()}, str(tmp / f"noise_rng_{accelerator.process_index}.safetensors"))
    if accelerator.is_main_process and ema is not None:
        ema.save_pretrained(str(tmp / EMA_DIR))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(tmp / STATE_FILE, {**state, "global_step": step})
        fsync_dir(tmp)
        if final.exists():  # re-saving a step after a resume
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(output_dir)
        if total_limit is not None:
            for _, old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path, *, ema=None, noise_generator: torch.Generator, ema_model_cls=None) -> dict:
    """Restore what `save_checkpoint` saved; returns the saved training state.

    `ema_model_cls`: the class of the EMA'd model (default `UNet2DModel`; the VAE script's
    `AutoencoderKL`). Its EMA weights sit in `unet_ema/` too: one layout for every script."""
    from diffusers import UNet2DModel
    from diffusers.training_utils import EMAModel
    from diffusers.utils import logging as diffusers_logging

    path = Path(path)
    state = json.loads((path / STATE_FILE).read_text())
    accelerator.load_state(str(path))
    rng_file = path / f"noise_rng_{accelerator.process_index}.safetensors"
    if not rng_file.is_file():
        raise FileNotFoundError(f"{rng_file} is missing: the checkpoint was written by fewer processes; "
                                "resume with the same number of processes.")
    noise_generator.set_state(load_file(str(rng_file))["state"])
    if ema is not None:
        if not (path / EMA_DIR).is_dir():
            raise FileNotFoundError(f"{path} has no EMA weights ({EMA_DIR}/); resume without --use_ema.")
        # The EMA config carries decay/step next to the UNet's; diffusers warns about them, harmlessly.
        verbosity = diffusers_logging.get_verbosity()
        diffusers_logging.set_verbosity_error()
        try:
            saved = EMAModel.from_pretrained(str(path / EMA_DIR), model_cls=ema_model_cls or UNet2DModel)
        finally:
            diffusers_logging.set_verbosity(verbosity)
        ema.load_state_dict(saved.state_dict())
    return state


def _remove_partial(output_dir: Path) -> None:
    if output_dir.is_dir():
        for path in output_dir.glob(".checkpoint-*.tmp"):
            shutil.rmtree(path, ignore_errors=True)


