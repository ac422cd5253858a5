"""Training data: load a dataset, check it before step 1, and feed it as [-1, 1] tensors.

A dataset is a folder saved by `medicraft build`/`medicraft phantom` (README.md +
data/*.parquet), a `save_to_disk` folder, a class-folder tree (`<root>/<class>/*.png`)
or a Hub dataset id. Only `image` and `label` are read.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from datasets import ClassLabel, Dataset, DatasetDict
from datasets import Image as ImageFeature

from medicraft_hf.data.images import IMAGE_EXTENSIONS
from medicraft_hf.schema import class_names_of
from medicraft_hf.sources import saved_dataset_format


def _is_class_folder_tree(path: Path) -> bool:
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if not subdirs or saved_dataset_format(path):
        return False
    return any(f.suffix.lower() in IMAGE_EXTENSIONS for d in subdirs for f in d.iterdir())


def load_dataset_dict(name: str, revision: str | None = None) -> DatasetDict:
    """A `DatasetDict` from a local folder (parquet/Hub layout, save_to_disk, class folders) or Hub id."""
    try:
        return _load_dataset_dict(name, revision)
    except (IndexError, ValueError) as err:
        if "corresponds to no data" in str(err) or isinstance(err, IndexError):
            # What datasets says about a split without rows.
            raise ValueError(f"Dataset {name} has an empty split ({err}): nothing to train on.") from None
        raise


def _load_dataset_dict(name: str, revision: str | None) -> DatasetDict:
    import datasets

    path = Path(name)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"--dataset_name {name} is a file; give a dataset folder or a Hub dataset id.")
        if saved_dataset_format(path) == "disk":
            ds = datasets.load_from_disk(str(path))
        elif _is_class_folder_tree(path):
            ds = datasets.load_dataset("imagefolder", data_dir=str(path))
        else:
            from medicraft_hf.data.load import load_oct_dataset  # checks the OCT schema, reads afresh

            ds = load_oct_dataset(str(path))
    else:
        ds = datasets.load_dataset(name, revision=revision)
    if isinstance(ds, Dataset):
        ds = DatasetDict({"train": ds})
    return ds


def select_training_split(dsdict: DatasetDict, split: str, name: str) -> Dataset:
    if split not in dsdict:
        raise ValueError(f"Dataset {name} has no split {split!r}; it has {sorted(dsdict)}. Pick one with --train_split.")
    ds = dsdict[split]
    if "image" not in ds.features or "label" not in ds.features:
        raise ValueError(f"Dataset {name}[{split!r}] needs columns 'image' and 'label'; it has {list(ds.features)}.")
    if not isinstance(ds.features["label"], ClassLabel):
        raise ValueError(f"Dataset {name}[{split!r}]: 'label' must be a ClassLabel (class names); "
                         "build the dataset with medicraft_hf or cast it to medicraft_hf.schema.oct_features().")
    if len(ds) == 0:
        raise ValueError(f"Dataset {name}[{split!r}] is empty: nothing to train on.")
    return ds


def restrict_classes(ds: Dataset, class_names: Sequence[str] | None, name: str) -> tuple[Dataset, list[str]]:
    """Keep the requested classes (in the given order; default: all) with labels renumbered 0..K-1."""
    known = class_names_of(ds)
    if not class_names:
        return ds, known
    class_names = list(class_names)
    unknown = [c for c in class_names if c not in known]
    if unknown:
        raise ValueError(f"Unknown class names {unknown} for dataset {name}; it has {known}.")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"--class_names has duplicates: {class_names}.")
    if class_names == known:
        return ds, known
    old_to_new = {known.index(c): i for i, c in enumerate(class_names)}
    kept = [i for i, lab in enumerate(ds["label"]) if lab in old_to_new]
    print(f"Training on classes {class_names}: {len(kept)} of {len(ds)} images kept, "
          f"{len(ds) - len(kept)} of other classes left out.")
    ds = ds.select(kept)
    features = ds.features.copy()
    features["label"] = ClassLabel(names=class_names)
    ds = ds.map(lambda b: {"label": [old_to_new[x] for x in b["label"]]}, batched=True, features=features)
    return ds, class_names


def validate_training_dataset(ds: Dataset, class_names: Sequence[str], resolution: tuple[int, int],
                              name: str) -> Counter:
    """Check every image's mode and shape and every class's count before training starts.

    Images must be 8-bit grayscale (mode "L"), at least `resolution` in size and of the same
    aspect ratio (resizing then only scales, it never distorts anatomy). Returns class counts.
    """
    if len(ds) == 0:
        raise ValueError(f"Dataset {name} is empty: nothing to train on.")
    counts = Counter(ds["label"])
    empty = [c for i, c in enumerate(class_names) if counts.get(i, 0) == 0]
    if empty:
        raise ValueError(f"Classes {empty} have no images in dataset {name}; give images for every class "
                         "or choose the classes to train with --class_names.")
    height, width = resolution
    raw = ds.cast_column("image", ImageFeature(decode=False)).select_columns(["image"])
    for i, item in enumerate(raw):
        image = item["image"]
        where = image.get("path") or f"row {i}"
        try:
            with _open_image(image) as im:  # lazy: reads the header only
                mode, (w, h) = im.mode, im.size
        except Exception as err:
            raise ValueError(f"Dataset {name}: image {where} cannot be read ({err}).") from None
        if mode != "L":
            raise ValueError(f"Dataset {name}: image {where} has mode {mode!r}; OCT B-scans must be 8-bit "
                             "grayscale (mode 'L'). Convert them when building the dataset.")
        if h < height or w < width:
            raise ValueError(f"Dataset {name}: image {where} is {h}x{w} (HxW), smaller than --resolution "
                             f"{height}x{width}; lower --resolution or use larger images.")
        if abs(h / w - height / width) > 0.02 * height / width:
            raise ValueError(f"Dataset {name}: image {where} is {h}x{w} (HxW), another aspect ratio than "
                             f"--resolution {height}x{width}; crop the images or change --resolution.")
    return counts


def _open_image(image: dict) -> PIL.Image.Image:
    if image.get("bytes") is not None:
        return PIL.Image.open(io.BytesIO(image["bytes"]))
    return PIL.Image.open(image["path"])


def to_model_input(image: PIL.Image.Image, resolution: tuple[int, int]) -> torch.Tensor:
    """A grayscale PIL image as a (1, H, W) float tensor in [-1, 1] at `resolution`."""
    height, width = resolution
    if image.size != (width, height):
        image = image.resize((width, height), PIL.Image.BICUBIC)
    array = np.asarray(image, dtype=np.float32)
    return torch.from_numpy(array / 127.5 - 1.0)[None]


def with_training_transform(ds: Dataset, resolution: tuple[int, int]) -> Dataset:
    """The dataset yielding {"pixel_values": (1, H, W) in [-1, 1], "class_labels": int}."""

    def transform(batch):
        return {
            "pixel_values": [to_model_input(im.convert("L"), resolution) for im in batch["image"]],
            "class_labels": batch["label"],
        }

    ds = ds.select_columns(["image", "label"])
    ds.set_transform(transform)
    return ds


class EpochSampler(torch.utils.data.Sampler):
    """Indices for one epoch, a pure function of (seed, epoch): resumable and identical on every rank.

    `class_balanced=True` draws each class equally often (with replacement), so a rare class
    is not drowned out by a common one. `set_epoch` picks the epoch.
    """

    def __init__(self, labels: Sequence[int], seed: int = 0, class_balanced: bool = False):
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)
        self.seed = int(seed)
        self.class_balanced = class_balanced
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[int]:
        rng = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n = len(self.labels)
        if self.class_balanced:
            counts = torch.bincount(self.labels).double()
            weights = 1.0 / counts[self.labels]
            order = torch.multinomial(weights, n, replacement=True, generator=rng)
        else:
            order = torch.randperm(n, generator=rng)
        return iter(order.tolist())


def steps_per_epoch(num_batches: int, gradient_accumulation_steps: int) -> int:
    return math.ceil(num_batches / gradient_accumulation_steps)
