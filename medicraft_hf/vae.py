"""One-channel autoencoder presets for latent diffusion, and encoding images to latents.

A preset is named by its compression: `f4c4` = 4x smaller per side, 4 latent channels.
docs/latent.md says how the shipped choice was measured. `taesd-*` presets are diffusers
`AutoencoderTiny`s (plain convolutions, no normalisation): distilled from a trained
`AutoencoderKL` (`train_vae.py --teacher_vae`), they decode its latents at a fraction of the
cost, the step that dominates few-step sampling at 256x512 (docs/distillation.md).
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, AutoencoderTiny

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
# name -> width of every level (AutoencoderTiny keeps one width), latent channels, blocks per
# encoder / decoder level. The decoder's last level has no block: its only full-size layer is
# the output convolution, since full-size convolutions are what a CPU decode pays for.
TINY_PRESETS: dict[str, dict] = {
    "taesd-f4c4-w16": {"width": 16, "latent_channels": 4, "encoder_blocks": (1, 2, 2), "decoder_blocks": (3, 3, 0)},
    "taesd-f4c4-w32": {"width": 32, "latent_channels": 4, "encoder_blocks": (1, 2, 2), "decoder_blocks": (3, 3, 0)},
    # Tests: 2x per side.
    "taesd-f2c2-w8": {"width": 8, "latent_channels": 2, "encoder_blocks": (1, 1), "decoder_blocks": (1, 0)},
}
ALL_PRESETS = sorted(VAE_PRESETS) + sorted(TINY_PRESETS)


def is_tiny(vae) -> bool:
    return isinstance(vae, AutoencoderTiny)


def preset_factor(preset: str) -> int:
    """Pixels per latent, per side, of a preset."""
    levels = (len(TINY_PRESETS[preset]["encoder_blocks"]) if preset in TINY_PRESETS
              else len(VAE_PRESETS[preset]["block_out_channels"]))
    return 2 ** (levels - 1)


def build_vae(preset: str = "f4c4", resolution=None) -> AutoencoderKL | AutoencoderTiny:
    """A grayscale autoencoder of a preset's shape; `scaling_factor` 1 until measured (an
    `AutoencoderTiny` takes its teacher's)."""
    if preset in TINY_PRESETS:
        cfg = TINY_PRESETS[preset]
        levels = len(cfg["encoder_blocks"])
        return AutoencoderTiny(in_channels=1, out_channels=1, latent_channels=cfg["latent_channels"],
                               encoder_block_out_channels=(cfg["width"],) * levels,
                               decoder_block_out_channels=(cfg["width"],) * levels,
                               num_encoder_blocks=cfg["encoder_blocks"], num_decoder_blocks=cfg["decoder_blocks"],
                               upsampling_scaling_factor=2, scaling_factor=1.0, shift_factor=0.0)
    if preset not in VAE_PRESETS:
        raise ValueError(f"Unknown VAE preset {preset!r}; choose one of {ALL_PRESETS}.")
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


def raw_latents(vae, pixels: torch.Tensor) -> torch.Tensor:
    """The encoder's output before scaling: an `AutoencoderKL`'s posterior mean, an
    `AutoencoderTiny`'s latents."""
    out = vae.encode(pixels.to(vae.dtype))
    return out.latents if is_tiny(vae) else out.latent_dist.mean


@torch.no_grad()
def encode(vae, pixels: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (N, 1, H, W) to latents as the UNet sees them: the encoder's output,
    shifted and scaled by the VAE config (the inverse of `OCTDiffusionPipeline._decode`)."""
    mean = raw_latents(vae, pixels)
    return (mean - (vae.config.shift_factor or 0.0)) * vae.config.scaling_factor
