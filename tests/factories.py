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


def tiny_latent_pipeline(class_names=CLASS_NAMES, seed: int = 0, resolution=(32, 64)) -> OCTDiffusionPipeline:
    """An untrained latent pipeline: the `tiny` VAE (2x per side) and a UNet on its latents."""
    from medicraft_hf.vae import build_vae

    torch.manual_seed(seed)
    vae = build_vae("tiny", resolution)
    vae.register_to_config(scaling_factor=0.7)  # not 1, so a missing scale would show
    latent = (resolution[0] // 2, resolution[1] // 2)
    unet = build_unet(len(class_names), preset="tiny", resolution=latent, channels=vae.config.latent_channels)
    return OCTDiffusionPipeline(unet, DDPMScheduler(num_train_timesteps=1000), class_names=list(class_names), vae=vae)


def save_tiny_phantom(directory: str | Path, size=(32, 64)) -> Path:
    """The phantom at a tiny size: 4 patients (48 scans) of two classes, split by patient."""
    from medicraft_hf.data.build import save_dataset_dict
    from medicraft_hf.data.phantom import build_phantom_dataset

    dsdict = build_phantom_dataset(4, seed=0, size=size, class_names=["healthy", "nevus"],
                                   class_weights={"healthy": 0.5, "nevus": 0.5})
    return save_dataset_dict(dsdict, directory)
