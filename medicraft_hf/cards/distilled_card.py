"""The model card of a few-step (consistency-distilled) OCT model, saved by `training/distill.py`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from huggingface_hub import ModelCard, ModelCardData

from medicraft_hf.cards.model_card import INTENDED_USE, LIMITATIONS
from medicraft_hf.sampling_defaults import FEW_STEP_DEFAULT_STEPS
from medicraft_hf.sources import is_hub_id


def distilled_model_card(
    *,
    class_names: Sequence[str],
    resolution: tuple[int, int],
    train_steps: int,
    teacher: str,
    dataset_name: str,
    num_ddim_timesteps: int,
    guidance_scale: float,
    class_counts: Mapping[str, int] | None = None,
    use_ema: bool = True,
    training_args: Mapping | None = None,
    sample_grid: str | None = None,
    evaluation: str | None = None,
    model_id: str | None = None,
    latent: bool = False,
    license: str = "mit",
) -> ModelCard:
    """A `ModelCard` for a consistency-distilled class-conditional OCT model."""
    class_names = list(class_names)
    height, width = resolution
    hub_dataset = dataset_name if is_hub_id(dataset_name) else None
    data = ModelCardData(
        license=license, library_name="diffusers", pipeline_tag="unconditional-image-generation",
        tags=["diffusers", "consistency-distillation", "lcm", "class-conditional", "medical-imaging", "oct",
              "medicraft-hf"],
        datasets=[hub_dataset] if hub_dataset else None,
        base_model=teacher if is_hub_id(teacher) else None,
    )
    name = model_id or "OCT class-conditional few-step model (consistency-distilled)"
    classes = ", ".join(f"`{i}`: {c}" for i, c in enumerate(class_names))
    counts = ""
    if class_counts:
        counts = " (" + ", ".join(f"{c} {class_counts.get(c, 0)}" for c in class_names) + " images)"
    args = ""
    if training_args:
        args = "\n".join(f"| `{k}` | `{v}` |" for k, v in sorted(training_args.items()) if v is not None)
        args = "\n<details><summary>All distillation arguments</summary>\n\n| argument | value |\n|---|---|\n" \
               + args + "\n\n</details>\n"
    grid = f"\n![Samples, one row per class]({sample_grid})\n" if sample_grid else "\nNo sample grid yet.\n"
    space = "in the latent space of the teacher's VAE, kept in `vae/`" if latent else "in pixel space"
    weights = "exponential moving average of the student (the distillation target)" if use_ema else \
        "the student's weights"
    content = f"""---
{data.to_yaml()}
---

# {name}

A class-conditional `UNet2DModel` for grayscale OCT B-scans of {height}x{width} pixels (height x
width), classes {classes}, that samples in **1-4 steps** with diffusers' `LCMScheduler`. It is
the teacher `{teacher}` after {train_steps} steps of consistency distillation (latent-consistency-model
form, {space}) with medicraft-hf's `training/distill.py`.

## Samples
{grid}
## Use

```python
from medicraft_hf.models import load_pipeline

pipe = load_pipeline("<this folder or repo id>")  # keeps its LCMScheduler
images = pipe(class_labels={{"{class_names[0]}": 4}}, num_inference_steps={FEW_STEP_DEFAULT_STEPS}).images
```

or `medicraft generate --model <folder> --per-class 100 --out synthetic` (the step count defaults
to {FEW_STEP_DEFAULT_STEPS} for this kind of model). Without medicraft-hf installed:

```python
from diffusers import DiffusionPipeline

pipe = DiffusionPipeline.from_pretrained("<folder>", custom_pipeline="<folder>", trust_remote_code=True)
```

## Intended use

{INTENDED_USE}

## Distillation

- Teacher: `{teacher}`; data: `{dataset_name}`{counts}
- Method: consistency distillation. The student (initialised from the teacher) maps a noisy
  image at a timestep of a {num_ddim_timesteps}-step DDIM grid to the clean image the target network
  finds one teacher DDIM step later; `LCMScheduler` samples with those same boundary scalings.
- Classifier-free guidance: distilled in at the teacher's scale {guidance_scale} (the project's
  default is 1.0, plain conditional sampling). The null class was kept in training, so
  `guidance_scale` > 1 still runs, untested.
- Weights: {weights}
- Distillation steps: {train_steps}
{args}
## Limitations

{LIMITATIONS}
- Few-step samples are the teacher's, approximately: check the evaluation below before using
  them where the teacher was evaluated.

## Evaluation

{evaluation or "Pending: compare with the teacher on the same seeds (`medicraft evaluate --compare-to`)."}
"""
    return ModelCard(content)
