"""A CSV manifest like the original medicraft project's: one line per image file.

The original columns are `filename`, `image_type` (`OCT`), `split`, `diagnosis`,
`reference_eye`; patient, exam and eye columns are read when present. Column names are
configurable. The manifest's own `split` column is not used: splits are re-made by
patient. File paths are relative to the manifest's folder (or `images_dir`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from medicraft_hf.data.folders import file_rows
from medicraft_hf.data.problems import Problems
from medicraft_hf.data.vendor import VENDOR_EXTENSIONS, ZEISS_IMG_SHAPE
from medicraft_hf.deid import pseudonym

# Our name -> the manifest's column name (None: the manifest has no such column).
DEFAULT_COLUMNS: dict[str, str | None] = {
    "file": "filename",
    "label": "diagnosis",
    "patient": "patient_id",
    "exam": "exam_id",
    "eye": "eye",
    "image_type": "image_type",
}
REQUIRED = ("file", "label")
EYE_VALUES = {"od": "OD", "r": "OD", "right": "OD", "os": "OS", "l": "OS", "left": "OS"}


def normalize_eye(value: str | None) -> str | None:
    """'OD'/'R'/'right' -> 'OD', 'OS'/'L'/'left' -> 'OS', empty -> None; else ValueError."""
    if value is None or str(value).strip() == "":
        return None
    try:
        return EYE_VALUES[str(value).strip().lower()]
    except KeyError:
        raise ValueError(f"eye {value!r} is not one of OD/OS (or R/L, right/left)") from None


def manifest_rows(
    manifest: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    problems: Problems | None = None,
    *,
    columns: Mapping[str, str | None] | None = None,
    images_dir: str | os.PathLike | None = None,
    img_shape: tuple[int, int] = ZEISS_IMG_SHAPE,
    planes: str = "radial",
    salt: str | None = None,
    max_pixels: int | None = None,
) -> tuple[list[str], Iterator[dict]]:
    """(class names, rows) of a CSV manifest; `columns` overrides `DEFAULT_COLUMNS` entries.

    Class names default to the labels in order of first appearance. A line naming a
    missing file, a file listed twice, an empty label, an unknown eye, or an
    `image_type` other than OCT is a problem (reported, never dropped silently).
    """
    problems = problems if problems is not None else Problems()
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"Manifest {manifest} not found; pass the CSV file listing the images.")
    columns = {**DEFAULT_COLUMNS, **(columns or {})}
    base = Path(images_dir) if images_dir else manifest.parent
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        lines = list(reader)
    for key in REQUIRED:
        if columns[key] not in header:
            raise ValueError(f"{manifest}: no {key} column {columns[key]!r} (columns: {header}); "
                             f"pass --{key}-column with the right name.")
    present = {key: col for key, col in columns.items() if col and col in header}
    if class_names is None:
        class_names = list(dict.fromkeys(line[present["label"]].strip() for line in lines if line[present["label"]].strip()))
    class_names = list(class_names)

    def rows():
        seen: dict[Path, int] = {}
        for number, line in enumerate(lines, start=2):  # line 1 is the header
            where = f"{manifest}:{number}"
            name = (line[present["file"]] or "").strip()
            label = (line[present["label"]] or "").strip()
            if not name:
                problems.add(where, "empty file name", "fill in the file name or delete the line")
                continue
            try:
                path = (base / name).resolve()
            except (RuntimeError, OSError):  # a link loop (Python < 3.13 raises RuntimeError)
                problems.add(where, f"{base / name} is a link loop (the link points back to itself)",
                             "fix the link or the file name")
                continue
            if path in seen:
                problems.add(where, f"{name} is already listed on line {seen[path]}", "delete one of the two lines")
                continue
            seen[path] = number
            if not label:
                problems.add(where, f"{name} has no label", "fill in the diagnosis or delete the line")
                continue
            if "image_type" in present and line[present["image_type"]].strip().upper() not in ("", "OCT"):
                problems.add(where, f"{name} has image_type {line[present['image_type']]!r}, not OCT",
                             "remove non-OCT images from the manifest")
                continue
            if not path.exists():
                problems.add(where, f"file {path} does not exist", "fix the file name or --images-dir")
                continue  # (a folder, a broken link: the reader names it)
            try:
                eye = normalize_eye(line[present["eye"]]) if "eye" in present else None
            except ValueError as err:
                problems.add(where, str(err), "write OD or OS (or leave it empty)")
                continue
            patient = line[present["patient"]].strip() if "patient" in present else ""
            exam = line[present["exam"]].strip() if "exam" in present else ""
            for row in file_rows(path, label, problems, patient=patient or None, img_shape=img_shape, planes=planes, salt=salt,
                                 max_pixels=max_pixels):
                if path.suffix.lower() not in VENDOR_EXTENSIONS:  # vendor files bring their own ids
                    row["exam_id"] = pseudonym(f"{patient}/{exam}", salt=salt, prefix="e") if exam else None
                    row["eye"] = eye
                row["origin"] = f"{where} ({row['origin']})"
                yield row

    return class_names, rows()
