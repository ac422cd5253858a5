"""One-channel `AutoencoderKL` presets for latent diffusion, and encoding images to latents.

A preset is named by its compression: `f4c4` = 4x smaller per side, 4 latent channels.
docs/latent.md says how the shipped choice was measured.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL

from medicraft_hf.parsing import parse_resolution
from medicraft_hf.pipeline import vae_scale_factor

# name -> encoder/decoder block widths (one level per width; every level but the last halves
# the size), latent channels, resnet layers per level. Narrow on purpose: they train on CPU.
VAE_PRESETS: dict[str, dict] = {
    "f4c4": {"block_out_channels": (32, 64, 128), "latent_channels": 4, "layers_per_block": 1},
    "f8c4": {"block_out_channels": (32, 64, 128, 128), "latent_channels": 4, "layers_per_block": 1},
    "f8c8": {"block_out_channels": (32, 64, 128, 128), "latent_channels": 8, "layers_per_block": 1},
    # Tests: 2x per side, milliseconds per call.
    "tiny": {"block_out_channels": (8, 16), "latent_channels": 2, "layers_per_block": 1},
}


def build_vae(preset: str = "f4c4", resolution=None) -> AutoencoderKL:
    """A grayscale `AutoencoderKL` of a preset's shape; `scaling_factor` 1 until measured."""
    if preset not in VAE_PRESETS:
        raise ValueError(f"Unknown VAE preset {preset!r}; choose one of {sorted(VAE_PRESETS)}.")
    cfg = VAE_PRESETS[preset]
    widths = cfg["block_out_channels"]
    levels = len(widths)
    height = parse_resolution(resolution)[0] if resolution is not None else 256
    return AutoencoderKL(
        in_channels=1,
        out_channels=1,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(widths),
        layers_per_block=cfg["layers_per_block"],
        latent_channels=cfg["latent_channels"],
        norm_num_groups=min(8, widths[0]),
        sample_size=height,
        scaling_factor=1.0,
        # Fully convolutional: trains on crops and encodes any size the factor divides. (Mid-block
        # attention over 64x128 latents would cost more than the rest of the model on CPU.)
        mid_block_add_attention=False,
    )


def check_divisible(resolution, vae, what: str = "--resolution") -> tuple[int, int]:
    """(H, W) of the latents of `resolution`-sized images; a clear error if the factor does not divide it."""
    height, width = parse_resolution(resolution)
    factor = vae_scale_factor(vae)
    if height % factor or width % factor:
        raise ValueError(f"{what} {height}x{width} is not divisible by the VAE's factor {factor} per side; "
                         f"use a multiple of {factor} (e.g. {height // factor * factor or factor}x"
                         f"{width // factor * factor or factor}).")
    return height // factor, width // factor


@torch.no_grad()
def encode(vae: AutoencoderKL, pixels: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (N, 1, H, W) to latents as the UNet sees them: the posterior's mean,
    shifted and scaled by the VAE config (the inverse of `OCTDiffusionPipeline._decode`)."""
    mean = vae.encode(pixels.to(vae.dtype)).latent_dist.mean
    return (mean - (vae.config.shift_factor or 0.0)) * vae.config.scaling_factor
