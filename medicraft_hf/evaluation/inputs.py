"""Load and check the two sides of an evaluation: real and synthetic OCT datasets.

Every bad input stops here with one clear error (differing label vocabularies, a missing
patient-held-out test split, a class absent on one side, images of another size), so the
classifier, fidelity and privacy code can assume clean arrays.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass

import numpy as np
from datasets import Dataset, DatasetDict, concatenate_datasets
from datasets import Image as DatasetImage
from PIL import Image

from medicraft_hf.data.images import load_image
from medicraft_hf.schema import check_schema, class_names_of

REQUIRED_REAL_SPLITS = ("train", "test")
HELD_OUT_SPLITS = ("test", "validation")


@dataclass
class ImageSet:
    """Images of one side at the evaluation resolution, as plain arrays."""

    images: np.ndarray  # (N, H, W) uint8
    labels: np.ndarray  # (N,) int64 class ids
    image_ids: list[str]
    name: str  # e.g. "real/train", for messages and reports
    patient_ids: list[str] | None = None  # resampling unit of the bootstrap
    exam_ids: list[str] | None = None  # the 12 planes of an exam -> one diagnosis
    shows_label: list[bool | None] | None = None  # phantom ground truth: does this plane show its label?

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self, num_classes: int) -> list[int]:
        return np.bincount(self.labels, minlength=num_classes).tolist()

    def subset(self, indices) -> ImageSet:
        indices = np.asarray(indices, dtype=np.int64)
        def pick(ids):
            return None if ids is None else [ids[i] for i in indices]

        return ImageSet(self.images[indices], self.labels[indices], pick(self.image_ids), self.name,
                        pick(self.patient_ids), pick(self.exam_ids), pick(self.shows_label))

    @staticmethod
    def concat(sets: list[ImageSet], name: str) -> ImageSet:
        return ImageSet(
            np.concatenate([s.images for s in sets]),
            np.concatenate([s.labels for s in sets]),
            [i for s in sets for i in s.image_ids],
            name,
        )


def load_side(source, name: str) -> DatasetDict:
    """A `DatasetDict` from a local dataset folder, a Hub id, or an in-memory dataset."""
    if isinstance(source, Dataset):
        source = DatasetDict({"train": source})
    if not isinstance(source, DatasetDict):
        from medicraft_hf.data.load import load_oct_dataset

        source = load_oct_dataset(str(source))
    check_schema(source, name=name)
    return source


def check_pair(real: DatasetDict, synthetic: DatasetDict, synthetic_every_class: bool = True) -> list[str]:
    """Raise a clear error unless real and synthetic can be compared; return the classes.

    `synthetic_every_class=False`: a synthetic pool may lack classes (a `--balance-to` pool has
    none of the majority class); what an arm draws from it is checked where it is drawn."""
    missing = [s for s in REQUIRED_REAL_SPLITS if s not in real]
    if missing:
        raise ValueError(
            f"The real dataset has splits {sorted(real)} but needs {list(REQUIRED_REAL_SPLITS)}: the test "
            "split must be real and patient-held-out. Split it by patient with "
            "medicraft_hf.data.split.split_by_patient and save it again."
        )
    real_names, synthetic_names = class_names_of(real), class_names_of(synthetic)
    if real_names != synthetic_names:
        raise ValueError(
            f"Label vocabularies differ: real has {real_names}, synthetic has {synthetic_names} "
            "(names and order must match). Generate the synthetic data with a model trained on "
            "this real dataset's labels, or cast one side's 'label' to the other's ClassLabel."
        )
    sides = [(f"real[{s!r}]", real[s]) for s in REQUIRED_REAL_SPLITS]
    if synthetic_every_class:
        sides.append(("synthetic", _all_rows(synthetic)))
    for split_name, ds in sides:
        counts = Counter(ds["label"])
        absent = [c for i, c in enumerate(real_names) if counts.get(i, 0) == 0]
        if absent:
            raise ValueError(
                f"Class(es) {absent} have no images in {split_name} (counts: "
                f"{ {c: counts.get(i, 0) for i, c in enumerate(real_names)} }). Every class needs images in "
                "real train, real test and synthetic; generate the missing classes or re-split by patient."
            )
    _check_patient_leakage(real)
    return real_names


def _check_patient_leakage(real: DatasetDict) -> None:
    # A patient in both train and test would inflate every real-test score.
    from medicraft_hf.data.split import check_no_patient_leakage

    check_no_patient_leakage(real)


def _all_rows(dsdict: DatasetDict) -> Dataset:
    splits = [dsdict[s] for s in sorted(dsdict)]
    return splits[0] if len(splits) == 1 else concatenate_datasets(splits)


def synthetic_rows(synthetic: DatasetDict) -> Dataset:
    """All synthetic splits together: every synthetic image is training material."""
    return _all_rows(synthetic)


def held_out_rows(real: DatasetDict) -> Dataset:
    """Real images of patients never trained on (test, plus validation when present)."""
    return concatenate_datasets([real[s] for s in HELD_OUT_SPLITS if s in real])


def image_size_of(ds: Dataset, name: str) -> tuple[int, int]:
    """The one (H, W) of every image in `ds`; a clear error naming the first odd image."""
    size = None
    for row in _undecoded(ds.select_columns(["image", "image_id"])):
        h, w = image_size(row["image"], f"{name}: image {row['image_id']!r}")
        if size is None:
            size = (h, w)
        elif (h, w) != size:
            raise ValueError(
                f"{name}: image {row['image_id']!r} is {h}x{w} but the others are {size[0]}x{size[1]}; "
                "all images must have one size. Rebuild the dataset with one --resolution."
            )
    return size


def check_same_size(real: DatasetDict, synthetic: DatasetDict) -> tuple[int, int]:
    """Both sides must hold images of one size: a model trained at HxW generates HxW."""
    sizes = {f"real[{s!r}]": image_size_of(real[s], f"real[{s!r}]") for s in real}
    sizes.update({f"synthetic[{s!r}]": image_size_of(synthetic[s], f"synthetic[{s!r}]") for s in synthetic})
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{k}: {h}x{w}" for k, (h, w) in sizes.items())
        raise ValueError(
            f"Real and synthetic images differ in size ({listed}). Generate at the real data's size "
            "(or rebuild the real dataset at the model's resolution) so they are comparable."
        )
    return next(iter(sizes.values()))


def to_image_set(ds: Dataset, resolution: tuple[int, int], name: str) -> ImageSet:
    """Decode (and resize to `resolution` = (H, W)) every image of `ds`."""
    h, w = resolution
    images = np.empty((len(ds), h, w), dtype=np.uint8)
    rows = _undecoded(ds.select_columns(["image", "image_id"]))
    for i, row in enumerate(rows):
        img = load_image(row["image"], f"{name}: image {row['image_id']!r}")  # the builders' checked reader
        if img.size != (w, h):
            img = img.resize((w, h), Image.Resampling.BILINEAR)
        images[i] = np.asarray(img)
    from medicraft_hf.data.phantom import plane_shows_label

    return ImageSet(images, np.asarray(ds["label"], dtype=np.int64), list(ds["image_id"]), name,
                    list(ds["patient_id"]) if "patient_id" in ds.column_names else None,
                    list(ds["exam_id"]) if "exam_id" in ds.column_names else None,
                    [plane_shows_label(g) for g in ds["ground_truth"]] if "ground_truth" in ds.column_names else None)


def _undecoded(ds: Dataset) -> Dataset:
    """`ds` with its images as stored (`{"bytes", "path"}`), for `medicraft_hf.data.images` to read:
    a Hub dataset's PNG can declare any size, and PIL would decode it first."""
    return ds.cast_column("image", DatasetImage(decode=False))


def image_size(value, origin: str) -> tuple[int, int]:
    """(H, W) of a stored image from its header (with the checked reader's pixel budget)."""
    from medicraft_hf.data.images import InvalidImageError, read_image_size

    if isinstance(value, dict) and value.get("bytes") is not None:
        return read_image_size(io.BytesIO(value["bytes"]), origin)
    if isinstance(value, dict) and value.get("path"):
        return read_image_size(value["path"], origin)
    raise InvalidImageError(origin, "no image bytes or path", "rebuild the dataset with medicraft build")


def stratified_cap(images: ImageSet, max_images: int | None, seed: int = 0) -> ImageSet:
    """At most `max_images`, keeping class proportions (for quick runs); None keeps all."""
    if max_images is None or len(images) <= max_images:
        return images
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(images.labels):
        idx = np.flatnonzero(images.labels == label)
        n = max(1, round(len(idx) * max_images / len(images)))
        keep.extend(rng.choice(idx, size=min(n, len(idx)), replace=False))
    return images.subset(np.sort(np.asarray(keep)))
