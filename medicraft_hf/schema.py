"""The one schema shared by real, phantom and synthetic OCT data.

Every loader, the phantom, the generator, the evaluation and the Space read and write
rows in these features. Real rows leave the provenance fields empty (None); synthetic
rows fill them. Label names and their order live in the `label` ClassLabel and survive
`save_to_disk`, parquet, `push_to_hub` and `load_dataset`.
"""

from __future__ import annotations

from collections.abc import Sequence

from datasets import ClassLabel, DatasetDict, Features, Image, Value

# Default vocabulary: the original study's diagnoses as the phantom draws them.
# Order matters: label ids are positions in this tuple.
CLASS_NAMES: tuple[str, ...] = ("healthy", "nevus", "nevus_fluid", "melanoma")

SOURCES: tuple[str, ...] = ("real", "phantom", "synthetic")

EYES: tuple[str, ...] = ("OD", "OS")  # right, left; None when unknown

# The 12 radial B-scans of one exam, one every 30 degrees (the medicraft protocol).
RADIAL_PLANES_DEG: tuple[float, ...] = tuple(float(30 * i) for i in range(12))

# Default image size (height, width) of the original study.
DEFAULT_SIZE: tuple[int, int] = (256, 512)

# Filled by synthetic rows only.
PROVENANCE_FIELDS: tuple[str, ...] = (
    "model_id",
    "model_revision",
    "scheduler",
    "num_inference_steps",
    "guidance_scale",
    "seed",
)


def oct_features(class_names: Sequence[str] = CLASS_NAMES) -> Features:
    """The `datasets.Features` of an OCT dataset with the given label vocabulary."""
    class_names = list(class_names)
    if len(class_names) < 2:
        raise ValueError(f"An OCT dataset needs at least two classes, got {class_names!r}.")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"Class names must be unique, got {class_names!r}.")
    return Features(
        {
            # Grayscale B-scan (PIL mode "L"), depth down, lateral across.
            "image": Image(mode="L"),
            "label": ClassLabel(names=class_names),
            # Pseudonymous: a salted hash for real data, never a clinical identifier.
            "patient_id": Value("string"),
            "exam_id": Value("string"),
            "eye": Value("string"),  # "OD" / "OS" / None
            "plane_deg": Value("float32"),  # radial plane angle, None when unknown
            # Where the B-scan lies in its exam, and its pixel size, when the source says so (vendor files):
            "bscan_index": Value("int32"),  # position in the volume as stored, 0-based
            "position_mm": Value("float32"),  # raster scans: distance from the first B-scan
            "depth_spacing_mm": Value("float32"),  # height of one pixel of the stored image
            "lateral_spacing_mm": Value("float32"),  # width of one pixel of the stored image
            "source": Value("string"),  # one of SOURCES
            # Stable, de-identified row id (used for duplicates, reviews and audits): `img-<pixel
            # hash>` for built rows, `phantom-s<seed>-<patient>-<plane>`, `synthetic-<run tag>-<index>`
            # (the tag hashes the generation settings); see cards.dataset_card.IMAGE_ID_FORMS.
            "image_id": Value("string"),
            # Phantom ground truth (JSON: fovea, surfaces, lesion extent); None otherwise.
            "ground_truth": Value("string"),
            # Provenance, filled by synthetic rows.
            "model_id": Value("string"),
            "model_revision": Value("string"),
            "scheduler": Value("string"),
            "num_inference_steps": Value("int32"),
            "guidance_scale": Value("float32"),
            "seed": Value("int64"),
        }
    )


def empty_row() -> dict:
    """A row with every optional field set to None; callers fill what they know."""
    return {name: None for name in oct_features()}


def class_names_of(dataset) -> list[str]:
    """Label vocabulary of a `Dataset` or `DatasetDict` in the OCT schema."""
    if isinstance(dataset, DatasetDict):
        dataset = next(iter(dataset.values()))
    feature = dataset.features.get("label")
    if not isinstance(feature, ClassLabel):
        raise ValueError(
            "Dataset has no ClassLabel column 'label'; build it with medicraft_hf loaders "
            f"or cast it to medicraft_hf.schema.oct_features(). Columns: {list(dataset.features)}"
        )
    return list(feature.names)


def check_schema(dataset, name: str = "dataset") -> None:
    """Raise a clear error when a dataset does not follow the OCT schema."""
    splits = dataset.items() if isinstance(dataset, DatasetDict) else [("", dataset)]
    for split, ds in splits:
        expected = oct_features(class_names_of(ds))
        missing = [c for c in expected if c not in ds.features]
        if missing:
            where = f"{name}[{split!r}]" if split else name
            raise ValueError(
                f"{where} is missing OCT schema columns {missing}; rebuild it with "
                "`medicraft build` / `medicraft phantom` or cast it to oct_features()."
            )
