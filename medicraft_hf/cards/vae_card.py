"""The card saved beside a VAE trained by `training/train_vae.py`."""

from __future__ import annotations

from collections.abc import Mapping

from huggingface_hub import ModelCardData

from medicraft_hf.cards.model_card import INTENDED_USE
from medicraft_hf.vae import TINY_PRESETS, VAE_PRESETS, preset_factor


def vae_card(*, preset: str, resolution: tuple[int, int], crop: tuple[int, int], train_steps: int,
             dataset_name: str, scaling_factor: float, use_ema: bool, losses: Mapping[str, float],
             sample_grid: str | None = None, model_id: str | None = None, teacher: str | None = None,
             license: str = "mit") -> str:
    """Markdown (with YAML metadata) describing the autoencoder, its training and its use.
    `teacher`: the AutoencoderKL a `taesd-*` preset was distilled from."""
    tiny = preset in TINY_PRESETS
    cfg = TINY_PRESETS[preset] if tiny else VAE_PRESETS[preset]
    factor = preset_factor(preset)
    cls = "AutoencoderTiny" if tiny else "AutoencoderKL"
    height, width = resolution
    data = ModelCardData(license=license, library_name="diffusers",
                         tags=["diffusers", "autoencoder-tiny" if tiny else "autoencoder-kl", "medical-imaging",
                               "oct", "medicraft-hf"])
    grid = (f"![Originals, reconstructions and |difference| x 4, one validation image per row]({sample_grid})"
            if sample_grid else "No validation grid yet.")
    loss_text = ", ".join(f"{name} x {weight:g}" for name, weight in losses.items() if weight)
    return f"""---
{data.to_yaml()}
---

# {model_id or f"OCT autoencoder ({cls}, 1 channel)"}

The first stage of a latent diffusion model for grayscale OCT B-scans: a diffusers
`{cls}` that maps a {height}x{width} image to {cfg["latent_channels"]} x
{height // factor}x{width // factor} latents ({factor}x smaller per side, preset `{preset}`).
Trained with medicraft-hf's `training/train_vae.py`.{_distilled_text(teacher) if tiny else ""}

## Reconstructions

{grid}

## Use

```python
from diffusers import {cls}

vae = {cls}.from_pretrained("<this folder or repo id>")
```

{_use_text(tiny)}

## Intended use

{INTENDED_USE}

## Training

- Data: `{dataset_name}`, images resized to {height}x{width}, random {crop[0]}x{crop[1]} crops
- Losses: {loss_text} (no pretrained perceptual network: the FFT log-magnitude term and the
  optional patch discriminator keep the speckle's texture)
- Optimization steps: {train_steps}
- Weights: {"exponential moving average (EMA) of the training weights" if use_ema else "the training weights"}
- `scaling_factor`: {scaling_factor:.5f} ({"the teacher's" if tiny else "1 / standard deviation of the training latents"})

## Limitations

- Speckle is noise: a VAE cannot reproduce its exact pattern, only its statistics; see
  docs/latent.md for PSNR, SSIM and speckle statistics on held-out scans.
- Trained on the data above; other devices or resolutions need retraining.
"""


def _distilled_text(teacher: str | None) -> str:
    return f"""

**Distilled** from the `AutoencoderKL` `{teacher or "(teacher)"}`: the decoder learned to decode
that VAE's latents (its posterior means of the training images) and the encoder to predict them,
so it replaces that VAE in a latent pipeline whose UNet learned those latents, at a fraction
of the decoding cost (plain convolutions, no normalisation, no full-size layer but the last)."""


def _use_text(tiny: bool) -> str:
    if tiny:
        return ("Swap it into a latent pipeline trained on the teacher's latents (`pipe.vae = vae`); the "
                "scaling factor is the teacher's, so the UNet's latents decode unchanged.")
    return ("Latents for diffusion are `scaling_factor` x the posterior mean (`medicraft_hf.vae.encode`);\n"
            "`training/train_ddpm.py --vae <this folder>` trains a class-conditional UNet on them and saves\n"
            "a pipeline that holds this VAE.")
