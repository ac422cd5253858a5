# This file is self-contained (torch + diffusers only) on purpose: it is copied as
# `pipeline.py` beside every saved model, so plain diffusers can load the model with
#   DiffusionPipeline.from_pretrained(model_dir, custom_pipeline=model_dir)
# without medicraft_hf installed.
"""Class-conditional diffusion pipeline for grayscale, rectangular OCT B-scans, in pixel
space or (with a `vae`) in the latent space of a one-channel `AutoencoderKL` (or of an
`AutoencoderTiny` distilled from one, which decodes the same latents faster)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, AutoencoderTiny, DiffusionPipeline, UNet2DModel
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

try:  # with medicraft_hf installed, errors that the CLI and the Space name in their own words
    from medicraft_hf.errors import ArgumentError
except ImportError:  # plain diffusers, loading this file beside a model
    ArgumentError = None

ClassSpec = Union[int, str, Sequence[Union[int, str]], Dict[Union[int, str], int], torch.Tensor, np.ndarray, None]
DEFAULT_STEPS = 20  # = medicraft_hf.sampling_defaults.DEFAULT_STEPS (this file imports no medicraft_hf module)

# Batch-invariant sampling changes process-wide torch settings (thread count, oneDNN): such
# calls run one at a time in a process, so two requests never see each other's settings.
_PROCESS_SETTINGS = threading.Lock()


def _argument_error(argument: str, template: str) -> ValueError:
    if ArgumentError is not None:
        return ArgumentError(argument, template)
    return ValueError(template.replace("{argument}", argument))


@dataclass
class OCTPipelineOutput(BaseOutput):
    """`images`: PIL list, numpy (N, H, W, 1) or torch (N, 1, H, W) in [0, 1].
    `class_labels`: the class id of each image, in order."""

    images: Union[List[PIL.Image.Image], np.ndarray, torch.Tensor]
    class_labels: List[int]


class OCTDiffusionPipeline(DiffusionPipeline):
    """Generate OCT B-scans of chosen classes with a class-conditional `UNet2DModel`.

    The UNet has `num_class_embeds = len(class_names) + 1`: the last embedding is the
    learned null class used for classifier-free guidance (training drops labels to it).

    Args:
        unet: `UNet2DModel` with class embeddings; `in_channels=out_channels=1` in pixel
            space, the VAE's `latent_channels` in latent space.
        scheduler: any diffusers scheduler (swap with `Scheduler.from_config`).
        class_names: label vocabulary, in label-id order.
        vae: optional one-channel `AutoencoderKL`. With it the UNet denoises latents
            (`vae.config.scaling_factor` times the encoder's mean) and the VAE decodes them;
            without it (`None`) the UNet denoises pixels. An `AutoencoderTiny` distilled from
            the UNet's `AutoencoderKL` (same latents, same scaling factor) can take its place.
    """

    model_cpu_offload_seq = "unet->vae"
    _optional_components = ["vae"]

    def __init__(self, unet: UNet2DModel, scheduler, class_names: Optional[Union[List[str], str]] = None,
                 vae: Optional[Union[AutoencoderKL, AutoencoderTiny]] = None):
        super().__init__()
        check_components(unet, vae)
        num_embeds = unet.config.num_class_embeds
        if num_embeds is None or num_embeds < 2:
            raise ValueError("The UNet must be class-conditional (num_class_embeds = classes + 1 null class).")
        if class_names is None:
            class_names = [str(i) for i in range(num_embeds - 1)]
        if isinstance(class_names, str):  # as stored in model_index.json
            class_names = json.loads(class_names)
        class_names = list(class_names)
        if len(class_names) != num_embeds - 1:
            raise ValueError(
                f"{len(class_names)} class names {class_names} do not match the UNet's "
                f"{num_embeds} class embeddings (classes + 1 null class)."
            )
        self.register_modules(unet=unet, scheduler=scheduler, vae=vae)
        # One JSON string, not a list: diffusers reads every list in model_index.json as a
        # (library, class) component, which breaks from_pretrained from the Hub.
        self.register_to_config(class_names=json.dumps(class_names))

    # ------------------------------------------------------------------ helpers
    @property
    def class_names(self) -> List[str]:
        names = self.config.class_names
        return json.loads(names) if isinstance(names, str) else list(names)

    @property
    def null_class_id(self) -> int:
        return len(self.class_names)

    @property
    def latent_size(self) -> tuple:
        """(H, W) of what the UNet denoises: the image in pixel space, the latent with a VAE."""
        size = self.unet.config.sample_size
        return (size, size) if isinstance(size, int) else tuple(size)

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent, per side (1 without a VAE)."""
        return 1 if self.vae is None else vae_scale_factor(self.vae)

    @property
    def image_size(self) -> tuple:
        height, width = self.latent_size
        return (height * self.vae_scale_factor, width * self.vae_scale_factor)

    def class_id(self, label: Union[int, str]) -> int:
        """A class name or id as an id, with a clear error for unknown classes."""
        names = self.class_names
        if isinstance(label, (torch.Tensor, np.ndarray)) and label.ndim == 0:
            label = label.item()  # a 0-dim tensor or array holds one label (int, bool, float or str)
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if 0 <= int(label) < len(names):
                return int(label)
            raise ValueError(f"Class id {label} is out of range; this model has classes 0..{len(names) - 1}: {names}.")
        if isinstance(label, str):
            if label in names:
                return names.index(label)
            if label.isdigit() and int(label) < len(names):
                return int(label)
            raise ValueError(f"Unknown class {label!r}; this model knows {names}.")
        raise ValueError(f"A class must be a name or an id, got {label!r}.")

    def expand_classes(self, class_labels: ClassSpec) -> List[int]:
        """Labels as a flat list of ids: one label, a list, or {class: count}.

        A torch tensor or numpy array counts as one label when 0-dim, a list when 1-dim."""
        if class_labels is None:
            return list(range(len(self.class_names)))
        if isinstance(class_labels, (torch.Tensor, np.ndarray)):
            if class_labels.ndim == 0:
                return [self.class_id(class_labels)]
            if class_labels.ndim != 1:
                raise ValueError(f"Class labels as a tensor or array must be 0- or 1-dimensional, "
                                 f"got shape {tuple(class_labels.shape)}.")
            return [self.class_id(label) for label in class_labels]
        if isinstance(class_labels, dict):
            ids = []
            for label, count in class_labels.items():
                if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
                    raise ValueError(f"Count for class {label!r} must be a non-negative integer, got {count!r}.")
                ids += [self.class_id(label)] * int(count)
            return ids
        if isinstance(class_labels, (str, int, np.integer)):
            return [self.class_id(class_labels)]
        return [self.class_id(label) for label in class_labels]

    def check_inputs(self, num_inference_steps, guidance_scale) -> None:
        """The sampling settings' one check (generation calls it before any work starts)."""
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise _argument_error("num_inference_steps",
                                  f"{{argument}} must be a positive integer, got {num_inference_steps!r}.")
        # A consistency (LCM) schedule is a subset of the grid the model was distilled on.
        limit = self.scheduler.config.get("original_inference_steps")
        if limit is not None and num_inference_steps > limit:
            raise _argument_error("num_inference_steps",
                                  f"{{argument}} must be at most {limit} with {type(self.scheduler).__name__} "
                                  f"(its original_inference_steps), got {num_inference_steps}.")
        if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)) \
                or not math.isfinite(guidance_scale) or guidance_scale < 0:
            raise _argument_error("guidance_scale", f"{{argument}} must be a number >= 0, got {guidance_scale!r}.")

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(
        self,
        class_labels: ClassSpec = None,
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = 1.0,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        latents: Optional[torch.Tensor] = None,
        output_type: str = "pil",
        return_dict: bool = True,
        batch_invariant: bool = False,
    ) -> Union[OCTPipelineOutput, tuple]:
        """Sample images.

        Args:
            class_labels: a class name or id, a list of them (one image each), a 1-d tensor or
                array of ids, or a dict `{class: count}`. `None` gives one image per class.
            num_inference_steps: denoising steps of the scheduler.
            guidance_scale: classifier-free guidance weight; 1.0 is plain conditional
                sampling, larger values follow the class more strongly.
            generator: a `torch.Generator`, or one per image for per-image reproducibility.
            latents: initial noise (N, C, h, w) of the UNet's input shape (the image's in
                pixel space, the latent's with a VAE), overriding `generator` for the start.
            output_type: "pil", "np" or "pt".
            batch_invariant: make each image's pixels independent of the batch it is in and of
                the thread count (slower): the UNet sees one image per call, with the kernels
                whose summation order depends on the thread count switched off (see
                `batch_invariant_kernels`). Datasets use it so any batch size or number of
                processes gives the same bytes.
        """
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}.")
        self.check_inputs(num_inference_steps, guidance_scale)
        ids = self.expand_classes(class_labels)
        batch = len(ids)
        if batch == 0:
            raise ValueError("No images requested: give at least one class label or a positive count.")
        if isinstance(generator, list) and len(generator) != batch:
            raise ValueError(f"Got {len(generator)} generators for {batch} images; pass one per image or one in all.")

        height, width = self.latent_size
        shape = (batch, self.unet.config.in_channels, height, width)
        dtype = self.unet.dtype
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=self.device, dtype=dtype)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents have shape {tuple(latents.shape)}, expected {shape}.")
        latents = latents.to(self.device, dtype) * self.scheduler.init_noise_sigma

        labels = torch.tensor(ids, device=self.device, dtype=torch.long)
        use_cfg = guidance_scale != 1.0
        if use_cfg:
            labels = torch.cat([labels, torch.full_like(labels, self.null_class_id)])

        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        step_kwargs = {}
        if "generator" in _step_params(self.scheduler):
            step_kwargs["generator"] = generator
        one_at_a_time = _PROCESS_SETTINGS if batch_invariant else contextlib.nullcontext()
        with one_at_a_time, batch_invariant_kernels(batch_invariant):
            for t in self.progress_bar(self.scheduler.timesteps):
                model_input = torch.cat([latents, latents]) if use_cfg else latents
                model_input = self.scheduler.scale_model_input(model_input, t)
                output = self._predict(model_input, t, labels, batch_invariant)
                if use_cfg:
                    cond, uncond = output.chunk(2)
                    output = uncond + guidance_scale * (cond - uncond)
                latents = self.scheduler.step(output, t, latents, **step_kwargs).prev_sample
            if self.vae is not None:
                latents = self._decode(latents, batch_invariant)

        images = (latents / 2 + 0.5).clamp(0, 1).float()
        if output_type == "pt":
            out = images.cpu()
        else:
            out = images.cpu().permute(0, 2, 3, 1).numpy()
            if output_type == "pil":
                out = [PIL.Image.fromarray(np.round(a[..., 0] * 255).astype(np.uint8), mode="L") for a in out]
        self.maybe_free_model_hooks()
        if not return_dict:
            return (out, ids)
        return OCTPipelineOutput(images=out, class_labels=ids)

    def _predict(self, x: torch.Tensor, t, labels: torch.Tensor, one_at_a_time: bool) -> torch.Tensor:
        if not one_at_a_time:
            return self.unet(x, t, class_labels=labels).sample
        return _one_image_per_call(lambda i: self.unet(x[i : i + 1], t, class_labels=labels[i : i + 1]).sample,
                                   x)

    def _decode(self, latents: torch.Tensor, one_at_a_time: bool) -> torch.Tensor:
        """Latents (scaled as the UNet sees them) to images in [-1, 1]."""
        config = self.vae.config
        latents = latents / config.scaling_factor + (config.shift_factor or 0.0)
        latents = latents.to(self.vae.dtype)
        if not one_at_a_time:
            return self.vae.decode(latents).sample
        return _one_image_per_call(lambda i: self.vae.decode(latents[i : i + 1]).sample, latents)

    def with_scheduler(self, scheduler) -> "OCTDiffusionPipeline":
        """A new pipeline sharing this one's models (UNet and VAE) with another scheduler object:
        a scheduler keeps state while it samples, so concurrent jobs each need their own."""
        return type(self)(unet=self.unet, scheduler=scheduler, class_names=self.class_names, vae=self.vae)

    def with_vae(self, vae) -> "OCTDiffusionPipeline":
        """A new pipeline with another autoencoder for the same latents, e.g. an `AutoencoderTiny`
        distilled from this one's VAE (`train_vae.py --teacher_vae`): faster decoding, same UNet."""
        if self.vae is None:
            raise ValueError("This is a pixel-space pipeline: it has no VAE to replace.")
        old, new = self.vae.config, vae.config
        if (new.latent_channels, vae_scale_factor(vae), new.scaling_factor, new.shift_factor or 0.0) != (
                old.latent_channels, vae_scale_factor(self.vae), old.scaling_factor, old.shift_factor or 0.0):
            raise ValueError(
                f"The new autoencoder's latents (channels {new.latent_channels}, {vae_scale_factor(vae)}x per side, "
                f"scaling {new.scaling_factor}) are not this pipeline's (channels {old.latent_channels}, "
                f"{vae_scale_factor(self.vae)}x, scaling {old.scaling_factor}): distil it from this VAE.")
        return type(self)(unet=self.unet, scheduler=self.scheduler, class_names=self.class_names, vae=vae)

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, save_directory: Union[str, os.PathLike], *args, **kwargs):
        """Save as usual, plus this file as `pipeline.py` for plain-diffusers loading."""
        super().save_pretrained(save_directory, *args, **kwargs)
        shutil.copyfile(os.path.abspath(__file__), os.path.join(save_directory, "pipeline.py"))


def _one_image_per_call(one_image, x: torch.Tensor) -> torch.Tensor:
    """`one_image(i)` for every image of the batch `x`, each in its own call (batch-invariant).

    Kernels pick their blocking (and so their summation order) by batch shape."""
    def one(i: int) -> torch.Tensor:
        with torch.no_grad():  # grad mode is per thread: the pool's threads need it too
            return one_image(i)

    threads = torch.get_num_threads()
    if x.device.type != "cpu" or threads == 1:
        return torch.cat([one(i) for i in range(len(x))])
    # On CPU every UNet (and VAE) call runs on exactly one thread, a lone image included: BLAS
    # splits a product's sums by thread (MKL with 2 threads on a one-image call), and how it
    # splits them differs between CPUs. Images of a batch run side by side, one thread each.
    torch.set_num_threads(1)
    try:
        if len(x) == 1:
            return one(0)
        with ThreadPoolExecutor(min(threads, len(x))) as pool:
            return torch.cat(list(pool.map(one, range(len(x)))))
    finally:
        torch.set_num_threads(threads)


def vae_scale_factor(vae) -> int:
    """Pixels per latent, per side: each encoder level but the last halves the size."""
    config = vae.config
    if "decoder_block_out_channels" in config:  # AutoencoderTiny: its decoder must undo its encoder
        down = 2 ** (len(config.encoder_block_out_channels) - 1)
        up = config.upsampling_scaling_factor ** (len(config.decoder_block_out_channels) - 1)
        if up != down:
            raise ValueError(f"The AutoencoderTiny's encoder shrinks {down}x per side and its decoder grows "
                             f"{up}x: they must agree.")
        return down
    return 2 ** (len(config.block_out_channels) - 1)


def check_components(unet, vae) -> None:
    """A UNet and a VAE that cannot work together fail here, before any sampling."""
    unet_channels = (unet.config.in_channels, unet.config.out_channels)
    if vae is None:
        if unet_channels != (1, 1):
            raise ValueError(f"A pixel-space UNet has 1 input and 1 output channel, this one {unet_channels}; "
                             "a UNet trained on latents needs its vae (pass vae=).")
        return
    if vae.config.in_channels != 1 or vae.config.out_channels != 1:
        raise ValueError(f"The VAE must have 1 image channel (grayscale OCT), it has in/out "
                         f"{vae.config.in_channels}/{vae.config.out_channels}.")
    vae_scale_factor(vae)  # an AutoencoderTiny whose encoder and decoder disagree fails here
    latent = vae.config.latent_channels
    if unet_channels != (latent, latent):
        raise ValueError(f"The UNet has {unet_channels[0]} input and {unet_channels[1]} output channels, the "
                         f"VAE's latents {latent}: train the UNet on this VAE's latents.")
    if not vae.config.scaling_factor or not math.isfinite(vae.config.scaling_factor):
        raise ValueError(f"The VAE's scaling_factor is {vae.config.scaling_factor!r}; set it to 1 / the latents' "
                         "standard deviation (training/train_vae.py measures it).")


@contextlib.contextmanager
def batch_invariant_kernels(enabled: bool = True):
    """Kernels whose results do not depend on the thread count (CPU) or on autotuning (CUDA).

    oneDNN convolutions split their sums by thread, so 1 and 2 threads differ in the last
    bits; PyTorch's own CPU convolution (im2col + BLAS, run on one thread by `_predict`)
    does not. On CUDA, cuDNN is asked for deterministic algorithms and no benchmarking.
    (`import medicraft_hf` also puts MKL in its strict reproducible mode, `MKL_CBWR`.)
    """
    if not enabled:
        yield
        return
    mkldnn = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False  # (its `flags()` context warns about TF32 on every CPU)
    try:
        with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, benchmark=False, deterministic=True,
                                        allow_tf32=False):
            yield
    finally:
        torch.backends.mkldnn.enabled = mkldnn


def _step_params(scheduler) -> set:
    import inspect

    return set(inspect.signature(scheduler.step).parameters)
