"""A training run's output folder: refuse another run's folder, save a pipeline into it atomically.

`training/distill.py` uses these; they do what `training/train_ddpm.py` does inline.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from medicraft_hf.training import checkpoints

# Hidden, so that pushes (which skip hidden files) never publish local dataset paths.
RUN_FILE = ".training_run.json"


def check_output_dir(output_dir, identity: dict, *, overwrite: bool, resume: str | None,
                     run_file: str = RUN_FILE) -> None:
    """Refuse an output_dir that holds another run (or anything else) before writing to it.

    `identity` holds the arguments that define the run; resuming with other values is an error.
    """
    out = Path(output_dir)
    if not out.exists() or overwrite:
        return
    if not out.is_dir():
        raise ValueError(f"--output_dir {out} is a file; choose a folder.")
    if not any(out.iterdir()):
        return
    if not (out / run_file).is_file():
        raise ValueError(f"--output_dir {out} is not empty and holds no training run ({run_file} missing); "
                         "choose a new folder or pass --overwrite_output_dir.")
    saved = json.loads((out / run_file).read_text())
    changed = {k: (saved.get(k), v) for k, v in identity.items() if saved.get(k) != v}
    if changed:
        diff = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise ValueError(f"--output_dir {out} holds a different run ({diff}); choose a new --output_dir "
                         "or pass --overwrite_output_dir.")
    if checkpoints.list_checkpoints(out) and not resume:
        raise ValueError(f"--output_dir {out} already holds checkpoints of this run; continue it with "
                         "--resume_from_checkpoint latest or start over with --overwrite_output_dir.")


def save_pipeline_folder(pipe, card_text: str, output_dir) -> None:
    """Save `pipe` (safetensors) and its card into output_dir, beside the checkpoints.

    Everything is written into a hidden temporary folder first, then moved in with one
    rename per component, so a kill never leaves a half-written component.
    """
    out = Path(output_dir)
    with tempfile.TemporaryDirectory(prefix=".pipeline-", dir=out) as tmp:
        tmp = Path(tmp)
        pipe.save_pretrained(tmp, safe_serialization=True)
        (tmp / "README.md").write_text(card_text)
        for item in sorted(tmp.iterdir()):
            target = out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)


def latest_grid(output_dir) -> str | None:
    """The newest validation grid as a path relative to output_dir (for the card)."""
    grids = sorted((Path(output_dir) / "samples").glob("step_*.png"))
    return f"samples/{grids[-1].name}" if grids else None


def prepare_output_dir(accelerator, output_dir, identity: dict, *, overwrite: bool, resume: str | None) -> None:
    """Check output_dir (all ranks), clear it with `overwrite`, and record the run's identity."""
    check_output_dir(output_dir, identity, overwrite=overwrite, resume=resume)
    if overwrite and accelerator.is_main_process:
        for _, path in checkpoints.list_checkpoints(output_dir):
            shutil.rmtree(path)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        from medicraft_hf.io import write_json_atomic

        write_json_atomic(Path(output_dir) / RUN_FILE, identity)
