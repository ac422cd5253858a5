"""Small real objects shared by tests (real diffusers code on a tiny random UNet)."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDPMScheduler

from medicraft_hf.pipeline import OCTDiffusionPipeline
from medicraft_hf.schema import CLASS_NAMES
from medicraft_hf.unet import build_unet


def tiny_pipeline(class_names=CLASS_NAMES, seed: int = 0, resolution=(32, 64)) -> OCTDiffusionPipeline:
    """An untrained, deterministic class-conditional pipeline (32x64 by default)."""
    torch.manual_seed(seed)
    unet = build_unet(len(class_names), preset="tiny", resolution=resolution)
    return OCTDiffusionPipeline(unet, DDPMScheduler(num_train_timesteps=1000), class_names=list(class_names))


def save_tiny_pipeline(directory: str | Path, **kwargs) -> Path:
    directory = Path(directory)
    tiny_pipeline(**kwargs).save_pretrained(directory)
    return directory
