"""The model card saved and pushed with every trained OCT diffusion model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from huggingface_hub import ModelCard, ModelCardData

from medicraft_hf.sampling_defaults import DEFAULT_STEPS
from medicraft_hf.sources import is_hub_id

INTENDED_USE = (
    "Research and education: generating class-balanced synthetic OCT B-scans to study data "
    "augmentation, privacy and evaluation of generative models. **Not for diagnosis** or any "
    "clinical decision: generated images are not patients and may show anatomy that does not exist."
)

LIMITATIONS = """\
- Images are synthetic; anatomical plausibility is not guaranteed (see the evaluation and
  expert-review sections when filled). Check them before any use.
- The model reflects its training data: its classes, devices, population and label noise. A
  phantom-trained model knows the phantom, not real eyes.
- Diffusion models can memorize training images; run a memorization check
  (`medicraft evaluate`) before sharing synthetic data derived from patient images.
- Trained at the resolution below; other sizes need retraining."""


def model_card(
    *,
    class_names: Sequence[str],
    resolution: tuple[int, int],
    train_steps: int,
    dataset_name: str,
    class_counts: Mapping[str, int] | None = None,
    preset: str | None = None,
    init_from: str | None = None,
    scheduler: str | None = None,
    use_ema: bool = True,
    training_args: Mapping | None = None,
    sample_grid: str | None = None,
    evaluation: str | None = None,
    expert_review: str | None = None,
    model_id: str | None = None,
    license: str = "mit",
    vae: str | None = None,
) -> ModelCard:
    """A `ModelCard` for a class-conditional OCT DDPM.

    `sample_grid` is a path relative to the model folder (e.g. "samples/step_1000.png").
    `init_from` names the model the weights started from (its architecture replaces `preset`).
    `vae` names the autoencoder of a latent model (the UNet then denoises its latents).
    `evaluation` and `expert_review` are Markdown sections others fill in later
    (`medicraft evaluate`, `medicraft review-report`); left out, the card says they are pending.
    """
    class_names = list(class_names)
    height, width = resolution
    hub_dataset = dataset_name if is_hub_id(dataset_name) else None
    data = ModelCardData(
        license=license,
        library_name="diffusers",
        pipeline_tag="unconditional-image-generation",
        tags=["diffusers", "ddpm", "class-conditional", "medical-imaging", "oct", "medicraft-hf"],
        datasets=[hub_dataset] if hub_dataset else None,
    )
    name = model_id or "OCT class-conditional diffusion model"
    counts = ""
    if class_counts:
        counts = "\n".join(f"| {i} | {c} | {class_counts.get(c, 0)} |" for i, c in enumerate(class_names))
        counts = "\n\n| id | class | training images |\n|---|---|---|\n" + counts + "\n\n"
    else:
        counts = "\n" + ", ".join(f"`{i}`: {c}" for i, c in enumerate(class_names)) + "\n"
    args = ""
    if training_args:
        args = "\n".join(f"| `{k}` | `{v}` |" for k, v in sorted(training_args.items()) if v is not None)
        args = "\n<details><summary>All training arguments</summary>\n\n| argument | value |\n|---|---|\n" \
               + args + "\n\n</details>\n"
    unet = f"fine-tuned from `{init_from}`" if init_from else f"preset `{preset}`"
    latent = (f"\n- Latent diffusion: the UNet denoises latents of the autoencoder `{vae}` (`vae/`, its "
              "`scaling_factor` in its config), which decodes them to pixels") if vae else ""
    grid = f"\n![Samples, one row per class]({sample_grid})\n" if sample_grid else "\nNo sample grid yet.\n"
    content = f"""---
{data.to_yaml()}
---

# {name}

A class-conditional DDPM (`UNet2DModel` with class embeddings and a learned null class for
classifier-free guidance) that generates grayscale OCT B-scans of {height}x{width} pixels
(height x width), one of {len(class_names)} classes. Trained with
medicraft-hf's (successor of [medicraft](https://github.com/drfifonz/medicraft)) `training/train_ddpm.py` on 🤗 diffusers
and accelerate.

## Samples
{grid}
## Use

```python
from medicraft_hf.models import load_pipeline

pipe = load_pipeline("<this folder or repo id>", scheduler="sde-dpmsolver++")
images = pipe(class_labels={{"{class_names[0]}": 4}}, num_inference_steps={DEFAULT_STEPS}).images
```

Without medicraft-hf installed, plain diffusers loads it through the pipeline file saved beside it:

```python
from diffusers import DiffusionPipeline

pipe = DiffusionPipeline.from_pretrained("<folder>", custom_pipeline="<folder>", trust_remote_code=True)
```

## Intended use

{INTENDED_USE}

## Training

- Data: `{dataset_name}`
- Classes (label id order):{counts}
- Resolution: {height}x{width} (HxW), grayscale
- UNet: {unet}{latent}
- Optimization steps: {train_steps}
- Weights: {"exponential moving average (EMA) of the training weights" if use_ema else "the training weights (no EMA)"}
- Default sampler: `{scheduler}`
{args}
## Limitations

{LIMITATIONS}

## Evaluation

{evaluation or "Pending: run `medicraft evaluate` (downstream classifier, fidelity, memorization)."}

## Expert review

{expert_review or "Pending: run `medicraft review` and `medicraft review-report`."}
"""
    return ModelCard(content)
