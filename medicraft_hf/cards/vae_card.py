"""The card saved beside a VAE trained by `training/train_vae.py`."""

from __future__ import annotations

from collections.abc import Mapping

from huggingface_hub import ModelCardData

from medicraft_hf.cards.model_card import INTENDED_USE
from medicraft_hf.vae import VAE_PRESETS


def vae_card(*, preset: str, resolution: tuple[int, int], crop: tuple[int, int], train_steps: int,
             dataset_name: str, scaling_factor: float, use_ema: bool, losses: Mapping[str, float],
             sample_grid: str | None = None, model_id: str | None = None, license: str = "mit") -> str:
    """Markdown (with YAML metadata) describing the autoencoder, its training and its use."""
    cfg = VAE_PRESETS[preset]
    factor = 2 ** (len(cfg["block_out_channels"]) - 1)
    height, width = resolution
    data = ModelCardData(license=license, library_name="diffusers",
                         tags=["diffusers", "autoencoder-kl", "medical-imaging", "oct", "medicraft-hf"])
    grid = (f"![Originals, reconstructions and |difference| x 4, one validation image per row]({sample_grid})"
            if sample_grid else "No validation grid yet.")
    loss_text = ", ".join(f"{name} x {weight:g}" for name, weight in losses.items() if weight)
    return f"""---
{data.to_yaml()}
---

# {model_id or "OCT autoencoder (AutoencoderKL, 1 channel)"}

The first stage of a latent diffusion model for grayscale OCT B-scans: a diffusers
`AutoencoderKL` that maps a {height}x{width} image to {cfg["latent_channels"]} x
{height // factor}x{width // factor} latents ({factor}x smaller per side, preset `{preset}`).
Trained with medicraft-hf's `training/train_vae.py`.

## Reconstructions

{grid}

## Use

```python
from diffusers import AutoencoderKL

vae = AutoencoderKL.from_pretrained("<this folder or repo id>")
```

Latents for diffusion are `scaling_factor` x the posterior mean (`medicraft_hf.vae.encode`);
`training/train_ddpm.py --vae <this folder>` trains a class-conditional UNet on them and saves
a pipeline that holds this VAE.

## Intended use

{INTENDED_USE}

## Training

- Data: `{dataset_name}`, images resized to {height}x{width}, random {crop[0]}x{crop[1]} crops
- Losses: {loss_text} (no pretrained perceptual network: the FFT log-magnitude term and the
  optional patch discriminator keep the speckle's texture)
- Optimization steps: {train_steps}
- Weights: {"exponential moving average (EMA) of the training weights" if use_ema else "the training weights"}
- `scaling_factor`: {scaling_factor:.5f} (1 / standard deviation of the training latents)

## Limitations

- Speckle is noise: a VAE cannot reproduce its exact pattern, only its statistics; see
  docs/latent.md for PSNR, SSIM and speckle statistics on held-out scans.
- Trained on the data above; other devices or resolutions need retraining.
"""
