"""Sampling rows: one pipeline call per block of images, rows in the OCT schema."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch

from medicraft_hf.errors import ArgumentError, check_positive_int
from medicraft_hf.generate.counts import check_counts
from medicraft_hf.generate.numbering import blocks, image_seed, plan_indices
from medicraft_hf.generate.settings import GenerationSettings
from medicraft_hf.pipeline import OCTDiffusionPipeline
from medicraft_hf.sampling_defaults import DEFAULT_BATCH_SIZE, DEFAULT_GUIDANCE_SCALE, DEFAULT_STEPS
from medicraft_hf.schema import empty_row
from medicraft_hf.shards import INDEX_COLUMN


def synthetic_image_id(settings: GenerationSettings, index: int) -> str:
    return f"synthetic-{settings.tag}-{index:07d}"


def sample_block(pipe: OCTDiffusionPipeline, indices: Sequence[int], settings: GenerationSettings) -> list[dict]:
    """One pipeline call for the images `indices`; rows in the OCT schema, in that order."""
    num_classes = len(settings.class_names)
    seeds = [image_seed(settings.seed, i) for i in indices]
    # CPU generators: the same noise on every device.
    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    out = pipe(
        class_labels=[i % num_classes for i in indices],
        num_inference_steps=settings.num_inference_steps,
        guidance_scale=settings.guidance_scale,
        generator=generators,
        output_type="pil",
        batch_invariant=True,
    )
    rows = []
    for index, label, image, s in zip(indices, out.class_labels, out.images, seeds):
        image_id = synthetic_image_id(settings, index)
        row = empty_row()
        row.update(
            image=image,
            label=label,
            # One pseudo-patient per image, so patient-level splits and leakage checks still apply.
            patient_id=image_id,
            exam_id=image_id,
            source="synthetic",
            image_id=image_id,
            model_id=settings.model_id,
            model_revision=settings.model_revision,
            scheduler=settings.scheduler,
            num_inference_steps=settings.num_inference_steps,
            guidance_scale=settings.guidance_scale,
            seed=s,
        )
        row[INDEX_COLUMN] = index
        rows.append(row)
    return rows


def generate_images(
    pipe: OCTDiffusionPipeline,
    counts: Mapping,
    *,
    seed: int = 0,
    num_inference_steps: int = DEFAULT_STEPS,
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    start_index: int = 0,
    model_id: str | None = None,
    model_revision: str | None = None,
) -> Iterator[dict]:
    """Rows of synthetic images in the OCT schema, made batch by batch (nothing held back).

    `counts` is `{class: number}`; rows come in global-index order. `start_index` skips
    that many images of the plan (to continue an interrupted stream). Each row also carries
    its global `index` (not a schema column; `rows_to_dataset` rejects it, drop it first).
    The same request gives the same rows as `generate_dataset` (same ids, seeds, pixels).
    """
    counts = check_counts(counts, pipe.class_names)
    settings = GenerationSettings.of(pipe, model_id=model_id, model_revision=model_revision,
                                     num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed)
    plan = plan_indices(counts, pipe.class_names)
    if isinstance(start_index, bool) or not isinstance(start_index, int) or not 0 <= start_index <= len(plan):
        raise ArgumentError("start_index", f"{{argument}} must be in 0..{len(plan)}, got {start_index!r}.")
    for block in blocks(plan[start_index:], check_positive_int("batch_size", batch_size)):
        yield from sample_block(pipe, block, settings)
