"""A small batch of generated rows as downloads: a zip of PNGs (+ metadata.csv, imagefolder
style) and a parquet file in the OCT schema. The Space offers them; any script may."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

from medicraft_hf.io import atomic_path, write_bytes_atomic
from medicraft_hf.schema import oct_features

# metadata.csv's columns: the row's provenance, and the anatomy check when the row has it.
METADATA_FIELDS = ["file_name", "label", "image_id", "seed", "scheduler", "num_inference_steps",
                   "guidance_scale", "model_id", "model_revision", "anatomy_verdict", "anatomy_score"]


def write_batch_downloads(rows: Sequence[dict], class_names: Sequence[str], folder: Path) -> tuple[Path, Path]:
    """`folder/oct_batch.zip` and `folder/oct_batch.parquet` for the rows (written atomically)."""
    from medicraft_hf.data.build import rows_to_dataset

    class_names = list(class_names)
    folder.mkdir(parents=True, exist_ok=True)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=METADATA_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, row in enumerate(rows):
            name = f"{i:03d}_{class_names[row['label']]}.png"
            png = io.BytesIO()
            row["image"].save(png, format="PNG")
            zf.writestr(name, png.getvalue())
            writer.writerow({**row, "file_name": name, "label": class_names[row["label"]]})
        zf.writestr("metadata.csv", table.getvalue())
    zip_path = folder / "oct_batch.zip"
    write_bytes_atomic(zip_path, archive.getvalue())

    # The parquet keeps exactly the schema's columns (what `medicraft generate` writes); the
    # anatomy check lives in the zip's csv.
    columns = oct_features(class_names)
    parquet_path = folder / "oct_batch.parquet"
    with atomic_path(parquet_path) as tmp:
        rows_to_dataset([{k: row[k] for k in columns} for row in rows], class_names=class_names).to_parquet(str(tmp))
    return zip_path, parquet_path
