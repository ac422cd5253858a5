"""Per-class sample grids: one row per class, the class name on the left."""

from __future__ import annotations

import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch

LABEL_WIDTH = 96


def sample_grid(pipe, per_class: int = 4, seed: int = 0, num_inference_steps: int = 20,
                guidance_scale: float = 1.0) -> PIL.Image.Image:
    """Sample `per_class` images of every class with fixed noise and tile them (mode "L")."""
    names = pipe.class_names
    labels = [c for c in range(len(names)) for _ in range(per_class)]
    # One generator per image: the grid is the same whatever the batch layout.
    generators = [torch.Generator(device="cpu").manual_seed(seed + i) for i in range(len(labels))]
    images = pipe(class_labels=labels, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                  generator=generators, output_type="pil").images
    return tile(images, names, per_class)


def tile(images: list[PIL.Image.Image], row_names: list[str], per_row: int, pad: int = 2) -> PIL.Image.Image:
    w, h = images[0].size
    grid = PIL.Image.new("L", (LABEL_WIDTH + per_row * (w + pad), len(row_names) * (h + pad)), color=0)
    draw = PIL.ImageDraw.Draw(grid)
    for r, name in enumerate(row_names):
        draw.text((4, r * (h + pad) + h // 2 - 5), name, fill=255)
        for c in range(per_row):
            grid.paste(images[r * per_row + c], (LABEL_WIDTH + c * (w + pad), r * (h + pad)))
    return grid


def log_grid(accelerator, grid: PIL.Image.Image, step: int, tag: str = "samples") -> None:
    """Send the grid to whichever trackers are active (tensorboard, wandb)."""
    array = np.asarray(grid)[..., None]
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_image(tag, array, step, dataformats="HWC")
            tracker.writer.flush()
        elif tracker.name == "wandb":
            import wandb

            tracker.log({tag: wandb.Image(grid)}, step=step)


def comparison_grid(rows, per_class: int = 4, seed: int = 0, pad: int = 6) -> PIL.Image.Image:
    """Per-class grids of several (title, pipeline, steps) stacked, titled, with the same seeds:
    column j of class c has the same initial noise in every block (e.g. teacher vs distilled)."""
    blocks = [(title, sample_grid(pipe, per_class=per_class, seed=seed, num_inference_steps=steps))
              for title, pipe, steps in rows]
    width = max(grid.width for _, grid in blocks)
    title_h = 14
    out = PIL.Image.new("L", (width, sum(grid.height + title_h + pad for _, grid in blocks)), color=0)
    draw = PIL.ImageDraw.Draw(out)
    y = 0
    for title, grid in blocks:
        draw.text((4, y + 1), title, fill=255)
        out.paste(grid, (0, y + title_h))
        y += grid.height + title_h + pad
    return out
