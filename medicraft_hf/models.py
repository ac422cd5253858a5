"""Loading pipelines (local folder, Hub id, or the embedded demo model) and schedulers."""

from __future__ import annotations

from pathlib import Path

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    LCMScheduler,
    UniPCMultistepScheduler,
)

from medicraft_hf.embedded import DEFAULT_EMBEDDED, EMBEDDED_MODELS, embedded_model, embedded_of_folder
from medicraft_hf.pipeline import OCTDiffusionPipeline
from medicraft_hf.sampling_defaults import DEFAULT_SCHEDULER, SCHEDULER_NAMES  # noqa: F401 (re-exported)
from medicraft_hf.sources import public_name

# The embedded models' folders and public names (medicraft_hf/embedded.py has them all).
DEMO_MODEL_DIR, DEMO_MODEL_ID = EMBEDDED_MODELS[DEFAULT_EMBEDDED].folder, EMBEDDED_MODELS[DEFAULT_EMBEDDED].model_id
FAST_DEMO_MODEL_DIR, FAST_DEMO_MODEL_ID = EMBEDDED_MODELS["demo-fast"].folder, EMBEDDED_MODELS["demo-fast"].model_id

# Samplers users choose by name. The fast default is DPM-Solver++ in its stochastic (SDE)
# form, 20-25 steps: OCT texture is speckle, and the deterministic (ODE) solvers leave it as
# grainy noise over a washed-out vitreous, while the SDE form draws it afresh at each step like
# 1000-step DDPM does (compared side by side in docs/generation.md).
# Pixel-space model: the multistep solvers threshold their x0 predictions to the image range
# [-1, 1] (dynamic thresholding); without it, early high-noise steps amplify the model's
# errors and the images saturate to black and white (seen with the demo model).
_THRESHOLD = {"thresholding": True, "sample_max_value": 1.0, "dynamic_thresholding_ratio": 0.995}
SCHEDULERS = {
    "sde-dpmsolver++": (DPMSolverMultistepScheduler, {"algorithm_type": "sde-dpmsolver++", **_THRESHOLD}),
    "dpmsolver++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", **_THRESHOLD}),
    "unipc": (UniPCMultistepScheduler, {"predict_x0": True, **_THRESHOLD}),
    "ddim": (DDIMScheduler, {}),
    "ddpm": (DDPMScheduler, {}),
    # For consistency-distilled models (training/distill.py), 1-4 steps; built from such a model's
    # own scheduler it keeps the grid it was distilled on. On other models it gives smooth images.
    "lcm": (LCMScheduler, {}),
}
assert tuple(SCHEDULERS) == SCHEDULER_NAMES  # the CLI offers the names without importing diffusers


def make_scheduler(name: str, config, latent: bool = False):
    """A scheduler of the named kind built from another scheduler's config.

    `latent=True` (a pipeline with a VAE): no thresholding and no clipping, since latents are
    not images in [-1, 1] and clipping them there would destroy them."""
    if name not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}.")
    cls, overrides = SCHEDULERS[name]
    if latent:
        overrides = {k: v for k, v in overrides.items() if k not in _THRESHOLD}
        options = cls.from_config(config).config
        overrides.update({key: False for key in ("thresholding", "clip_sample") if key in options})
    return cls.from_config(config, **overrides)


def scheduler_for(pipe: OCTDiffusionPipeline, name: str):
    """A new scheduler of the named kind for `pipe` (pixel or latent), from its scheduler's config."""
    return make_scheduler(name, pipe.scheduler.config, latent=pipe.vae is not None)


def load_pipeline(model: str | Path | None = None, revision: str | None = None,
                  scheduler: str | None = None) -> OCTDiffusionPipeline:
    """Load a saved pipeline from a folder or a Hub id (safetensors only).

    `model=None` loads the embedded demo model; an embedded model's name ("demo-latent") loads
    that one. `scheduler` swaps the sampler by name.
    """
    model = embedded_model(model)
    source = DEMO_MODEL_DIR if model is None else model
    if model is None and not (DEMO_MODEL_DIR / "model_index.json").is_file():
        raise FileNotFoundError(f"The demo model is missing from {DEMO_MODEL_DIR}; reinstall medicraft-hf "
                                "or pass a model folder / Hub id.")
    if isinstance(source, Path) or Path(str(source)).exists():
        if not (Path(source) / "model_index.json").is_file():
            raise FileNotFoundError(f"{source} is not a saved pipeline folder (no model_index.json).")
        source = str(source)
    pipe = OCTDiffusionPipeline.from_pretrained(source, revision=revision, use_safetensors=True)
    if scheduler is not None:
        pipe.scheduler = scheduler_for(pipe, scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def model_id_of(model: str | Path | None) -> str:
    """The name provenance records for a model argument (never a local absolute path)."""
    if model is None:
        return DEMO_MODEL_ID
    embedded = embedded_of_folder(model)  # an embedded model, by its public name
    return embedded.model_id if embedded else str(public_name(model))


def weights_digest(state_dict) -> str:
    """sha256 of a state dict's float32 values in key order: equal digests, equal weights.

    Training compares ranks with it; generation records it as a local model's revision.
    """
    import hashlib

    digest = hashlib.sha256()
    for key in sorted(state_dict):
        digest.update(key.encode())
        digest.update(state_dict[key].detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
