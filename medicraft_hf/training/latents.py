"""Latent diffusion training data: the training images encoded once by the VAE and cached, so a
training step costs only the UNet.

The cache is one safetensors file under `<output_dir>/.latents/` (hidden: pushes skip it), named
by what its content depends on: the dataset split's fingerprint, the resolution and the VAE's
weights. The main process encodes and writes it atomically; the other ranks wait and read it,
so every rank trains on the same bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from datasets import Dataset
from diffusers import AutoencoderKL, AutoencoderTiny, AutoModel
from safetensors.torch import load_file, save_file

from medicraft_hf.io import atomic_path
from medicraft_hf.models import weights_digest
from medicraft_hf.training.data import with_training_transform
from medicraft_hf.vae import encode

CACHE_DIR = ".latents"


def load_vae(source: str) -> AutoencoderKL | AutoencoderTiny:
    """An `AutoencoderKL` (or `AutoencoderTiny`) from a VAE folder / Hub id (`train_vae.py`'s
    output) or a latent pipeline (its `vae/` component); safetensors only."""
    path = Path(source)
    subfolder = "vae" if (path / "vae" / "config.json").is_file() else None
    if path.exists() and subfolder is None and not (path / "config.json").is_file():
        raise FileNotFoundError(f"--vae {source} holds no AutoencoderKL (no config.json, no vae/config.json); "
                                "give the output_dir of training/train_vae.py or a latent pipeline.")
    try:  # AutoModel reads the class from the config: an AutoencoderKL or a distilled AutoencoderTiny
        vae = AutoModel.from_pretrained(str(source), subfolder=subfolder, use_safetensors=True)
    except OSError as err:
        raise FileNotFoundError(f"--vae {source} cannot be loaded as an autoencoder ({err}).") from None
    if not isinstance(vae, (AutoencoderKL, AutoencoderTiny)):
        raise ValueError(f"--vae {source} holds a {type(vae).__name__}, not an autoencoder; give the output_dir of "
                         "training/train_vae.py or a latent pipeline.")
    cls = type(vae)
    if vae.config.in_channels != 1 or vae.config.out_channels != 1:
        raise ValueError(f"--vae {source} has {vae.config.in_channels} image channels; OCT B-scans need a "
                         "1-channel VAE (training/train_vae.py makes one).")
    # A fresh module from the config: the loaded one remembers where it came from (`_name_or_path`),
    # a local path that saving the pipeline would write into its vae/config.json.
    fresh = cls.from_config({k: v for k, v in vae.config.items() if k != "_name_or_path"})
    fresh.load_state_dict(vae.state_dict())
    return fresh.eval().requires_grad_(False)


class LatentDataset(torch.utils.data.Dataset):
    """Cached latents as the training loop's batches: {"pixel_values": latent, "class_labels": id}."""

    def __init__(self, latents: torch.Tensor, labels: torch.Tensor):
        self.latents, self.labels = latents, labels

    def __len__(self) -> int:
        return len(self.latents)

    def __getitem__(self, i: int) -> dict:
        return {"pixel_values": self.latents[i], "class_labels": int(self.labels[i])}


def cache_path(output_dir, train_ds: Dataset, resolution: tuple[int, int], vae: AutoencoderKL) -> Path:
    key = hashlib.sha256(f"{train_ds._fingerprint}|{resolution}|{weights_digest(vae.state_dict())}|"
                         f"{vae.config.scaling_factor}|{vae.config.shift_factor}".encode()).hexdigest()[:16]
    return Path(output_dir) / CACHE_DIR / f"latents-{key}.safetensors"


def encoded_dataset(accelerator, train_ds: Dataset, resolution: tuple[int, int], vae: AutoencoderKL, output_dir,
                    batch_size: int = 8) -> LatentDataset:
    """The training split as cached latents (encoded now by the main process if not cached yet)."""
    path = cache_path(output_dir, train_ds, resolution, vae)
    if accelerator.is_main_process and not path.is_file():
        images = with_training_transform(train_ds, resolution)
        chunks = []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]["pixel_values"]
            chunks.append(encode(vae, torch.stack(batch)).float().cpu())
            accelerator.print(f"Encoded {min(start + batch_size, len(images))}/{len(images)} training images.",
                              end="\r")
        accelerator.print()
        with atomic_path(path) as tmp:
            save_file({"latents": torch.cat(chunks).contiguous(),
                       "labels": torch.tensor(train_ds["label"], dtype=torch.long)}, str(tmp))
    accelerator.wait_for_everyone()
    saved = load_file(str(path))
    if saved["labels"].tolist() != list(train_ds["label"]):
        raise RuntimeError(f"Latent cache {path} does not match the dataset's labels; delete it and rerun.")
    return LatentDataset(saved["latents"], saved["labels"])
