"""Small OCT-schema datasets for the review tests (tiny random images, real features)."""

from __future__ import annotations

import numpy as np
from datasets import Dataset

from medicraft_hf.schema import CLASS_NAMES, empty_row, oct_features


def review_dataset(n: int, *, source: str = "synthetic", prefix: str = "syn", seed: int = 0,
                   size=(32, 64), model_revision: str = "rev-a") -> Dataset:
    """n rows in the OCT schema; synthetic rows carry provenance (model, revision, seed)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row = empty_row()
        row.update(
            image=rng.integers(0, 256, size=size, dtype=np.uint8),
            label=i % len(CLASS_NAMES),
            source=source,
            image_id=f"{prefix}-{i:04d}",
        )
        if source == "synthetic":
            row.update(model_id="local/medicraft-tiny", model_revision=model_revision, scheduler="dpmsolver++",
                       num_inference_steps=10, guidance_scale=1.0, seed=1000 + i)
        else:
            row.update(patient_id=f"p-{i // 2:012d}", exam_id=f"e-{i // 2:012d}", eye="OD", plane_deg=0.0)
        rows.append(row)
    columns = {name: [r[name] for r in rows] for name in rows[0]}
    return Dataset.from_dict(columns, features=oct_features())
