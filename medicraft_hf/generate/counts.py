"""How many images of each class: checked counts, `class=N` text, balancing a real dataset."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
from datasets import DatasetDict

from medicraft_hf.schema import class_names_of


def check_counts(counts: Mapping, class_names: Sequence[str]) -> dict[str, int]:
    """`{class name or id: count}` -> `{name: count}` in vocabulary order, or a clear error."""
    class_names = list(class_names)
    if not isinstance(counts, Mapping) or not counts:
        raise ValueError(f"Counts must be a non-empty mapping of class -> number of images, got {counts!r}.")
    checked: dict[str, int] = {}
    for label, count in counts.items():
        name = label
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool) and 0 <= label < len(class_names):
            name = class_names[int(label)]
        if name not in class_names:
            raise ValueError(f"Unknown class {label!r}; the model knows {class_names}.")
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count <= 0:
            raise ValueError(f"The count for class {name!r} must be a positive integer, got {count!r}.")
        if name in checked:
            raise ValueError(f"Class {name!r} is given twice in the counts.")
        checked[name] = int(count)
    return {name: checked[name] for name in class_names if name in checked}


def parse_counts(text: str) -> dict[str, int]:
    """'healthy=10,melanoma=40' -> {'healthy': 10, 'melanoma': 40} (names checked later)."""
    counts: dict[str, int] = {}
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"Bad count {part!r} in {text!r}: write class=N pairs, e.g. healthy=10,melanoma=40.")
        try:
            number = int(value.strip())
        except ValueError:
            raise ValueError(f"The count for class {name!r} must be a positive integer, got {value.strip()!r}.") from None
        if name in counts:
            raise ValueError(f"Class {name!r} is given twice in {text!r}.")
        counts[name] = number
    if not counts:
        raise ValueError(f"No counts in {text!r}: write class=N pairs, e.g. healthy=10,melanoma=40.")
    return counts


def balance_counts(reference, class_names: Sequence[str], split: str = "train",
                   revision: str | None = None) -> dict[str, int]:
    """Images per class that fill every class of a real dataset up to its majority class.

    `reference` is a `DatasetDict`, a saved dataset folder or a Hub id; its label names and
    their order must be the model's (label ids would mean different classes otherwise).
    """
    from medicraft_hf.data.load import load_oct_dataset

    what = reference if isinstance(reference, (str, os.PathLike)) else "the reference dataset"
    dsdict = reference if isinstance(reference, DatasetDict) else load_oct_dataset(reference, revision=revision)
    if split not in dsdict:
        raise ValueError(f"{what} has no split {split!r}; its splits are {list(dsdict)} (use --balance-split).")
    ref_names = class_names_of(dsdict)
    if list(ref_names) != list(class_names):
        raise ValueError(
            f"The model's classes {list(class_names)} do not match the classes of {what} {ref_names} "
            "(names and order must be equal); use a model trained on this label vocabulary."
        )
    have = Counter(dsdict[split]["label"])
    majority = max(have.values(), default=0)
    if majority == 0:
        raise ValueError(f"{what}[{split!r}] is empty: nothing to balance.")
    counts = {name: majority - have.get(i, 0) for i, name in enumerate(class_names) if have.get(i, 0) < majority}
    if not counts:
        raise ValueError(f"{what}[{split!r}] is already balanced ({majority} images per class): nothing to generate.")
    return counts
