"""Pieces of `training/train_vae.py`: texture-keeping losses, a patch discriminator, crops,
the scaling factor, and the validation grid of originals beside reconstructions.

No pretrained perceptual network (LPIPS) can be downloaded here. What keeps speckle instead:
  * an FFT log-magnitude loss: the spectrum of a reconstruction must match the original's,
    which a blurred reconstruction (high frequencies missing) cannot, whatever their phase;
  * optionally a histogram loss: the sorted pixel values of a reconstruction must match the
    original's (the 1-D Wasserstein distance of their intensity distributions), so speckle keeps
    its brightness spread even where a pixel-wise loss would settle for the mean;
  * optionally a small PatchGAN discriminator (hinge loss), trained from scratch with the VAE,
    that tells real speckle patches from reconstructed ones.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from torch import nn

from medicraft_hf.training.validation import tile
from medicraft_hf.vae import raw_latents


def fft_magnitude_loss(reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Mean |log(1 + |FFT(reconstruction)|) - log(1 + |FFT(original)|)| over all frequencies."""
    rec = torch.fft.rfft2(reconstruction.float(), norm="ortho").abs()
    ori = torch.fft.rfft2(original.float(), norm="ortho").abs()
    return (torch.log1p(rec) - torch.log1p(ori)).abs().mean()


def histogram_loss(reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Mean |sorted(reconstruction) - sorted(original)| per image: the 1-D Wasserstein-1 distance
    between the two images' intensity distributions, blind to where each value lies."""
    rec = reconstruction.float().flatten(1).sort(dim=1).values
    ori = original.float().flatten(1).sort(dim=1).values
    return (rec - ori).abs().mean()


class ReconstructionModel(nn.Module):
    """A VAE's encode -> sample (mean + std x `noise`) -> decode as one forward, returning the
    reconstruction and the KL term, so data-parallel training (DDP) sees every parameter used."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        posterior = self.vae.encode(x).latent_dist
        reconstruction = self.vae.decode(posterior.mean + posterior.std * noise).sample
        return reconstruction, posterior.kl().mean()


class DistilledAutoencoder(nn.Module):
    """An `AutoencoderTiny` learning a trained VAE's latents, as one forward (for DDP): its
    decoder decodes the teacher's latents of the batch, its encoder predicts them. Returns the
    reconstruction and the encoder's mean squared error (unscaled latents on both sides)."""

    def __init__(self, student):
        super().__init__()
        self.student = student

    def forward(self, x: torch.Tensor, teacher_latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        reconstruction = self.student.decode(teacher_latents).sample
        predicted = self.student.encode(x).latents
        return reconstruction, F.mse_loss(predicted.float(), teacher_latents.float())


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix): one real/fake logit per ~34x34-pixel patch of a grayscale image."""

    def __init__(self, width: int = 32, levels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        channels = width
        for i in range(1, levels):
            out = width * 2 ** i
            stride = 2 if i < levels - 1 else 1
            layers += [nn.Conv2d(channels, out, 4, stride, 1), nn.GroupNorm(8, out), nn.LeakyReLU(0.2)]
            channels = out
        layers.append(nn.Conv2d(channels, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def random_crops(images: torch.Tensor, size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """One random (h, w) crop per image, its corner drawn from `generator` (saved in checkpoints)."""
    h, w = size
    n, _, height, width = images.shape
    if (h, w) == (height, width):
        return images
    tops = torch.randint(0, height - h + 1, (n,), generator=generator).tolist()
    lefts = torch.randint(0, width - w + 1, (n,), generator=generator).tolist()
    return torch.stack([images[i, :, t:t + h, left:left + w] for i, (t, left) in enumerate(zip(tops, lefts))])


@torch.no_grad()
def latent_scaling_factor(vae, images: torch.Tensor, batch_size: int = 8) -> float:
    """1 / the standard deviation of the posterior means of `images` (the LDM convention), so
    the UNet sees latents of about unit variance, as the noise schedule assumes."""
    means = [raw_latents(vae, images[i:i + batch_size].to(vae.device)).float()
             for i in range(0, len(images), batch_size)]
    return float(1.0 / torch.cat(means).std())


@torch.no_grad()
def reconstruct(vae, images: torch.Tensor, batch_size: int = 8, encoder=None) -> torch.Tensor:
    """Images in [-1, 1] encoded (by `encoder`, default the VAE itself: the posterior mean) and
    decoded by `vae`, clamped to [-1, 1]. A distilled decoder is judged on its teacher's latents."""
    encoder = encoder or vae
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(vae.device, vae.dtype)
        out.append(vae.decode(raw_latents(encoder, x)).sample.float().clamp(-1, 1).cpu())
    return torch.cat(out)


def psnr(reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [-1, 1] (peak-to-peak range 2)."""
    mse = ((reconstruction.float() - original.float()) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


def to_pil(image: torch.Tensor) -> PIL.Image.Image:
    """A (1, H, W) tensor in [-1, 1] as an 8-bit grayscale image."""
    array = ((image[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    return PIL.Image.fromarray(array, mode="L")


def reconstruction_grid(originals: torch.Tensor, reconstructions: torch.Tensor) -> PIL.Image.Image:
    """One row per image: original, reconstruction, |difference| x 4; the row named by its PSNR."""
    images, names = [], []
    for ori, rec, value in zip(originals, reconstructions, psnr(reconstructions, originals)):
        diff = ((rec - ori).abs() * 4 - 1).clamp(-1, 1)
        images += [to_pil(ori), to_pil(rec), to_pil(diff)]
        names.append(f"{value:.1f} dB")
    return tile(images, names, per_row=3)


def grid_images(ds, count: int) -> torch.Tensor:
    """The first `count` images of a transformed dataset (`with_training_transform`), stacked."""
    count = min(count, len(ds))
    return torch.stack([ds[i]["pixel_values"] for i in range(count)]) if count else torch.empty(0)


def as_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) in [-1, 1] as (N, H, W) uint8, the way images are stored."""
    return ((images[:, 0].float().clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
