"""Seeded, class-stratified train/validation/test splits by patient, and the leakage check.

The 12 radial B-scans of one exam are near-duplicates: splitting by image would put
copies of test images in training. Every patient therefore lands in exactly one split.
"""

from __future__ import annotations

import random
import warnings
from collections import Counter, defaultdict
from collections.abc import Mapping

from datasets import Dataset, DatasetDict, concatenate_datasets

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.7, "validation": 0.15, "test": 0.15}


def patient_keys(dataset: Dataset) -> list[str]:
    """The grouping key of each row: its patient id, or (no id) the row's own image id.

    A row without a patient id is its own patient: a folder without ids cannot tell
    which scans come from one eye, so such datasets may still leak (the card says so).
    """
    patients = dataset["patient_id"]
    if any(p is None for p in patients):
        image_ids = dataset["image_id"]
        return [p if p is not None else f"image:{i}" for p, i in zip(patients, image_ids)]
    return list(patients)


def patient_labels(keys: list[str], labels: list[int]) -> dict[str, int]:
    """One class per patient: their most frequent label, ties going to the later class.

    Later classes are the more severe ones in the default vocabulary (healthy < nevus <
    nevus_fluid < melanoma), so a patient with equal healthy and melanoma scans counts
    as melanoma.
    """
    per_patient: dict[str, Counter] = defaultdict(Counter)
    for key, label in zip(keys, labels):
        per_patient[key][label] += 1
    return {key: max(counts, key=lambda label: (counts[label], label)) for key, counts in per_patient.items()}


def _allocate(n: int, fractions: list[float]) -> list[int]:
    """Split n items by fractions (largest remainder); every split with a share gets one when n allows."""
    exact = [n * f for f in fractions]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], -fractions[i]))[: n - sum(counts)]:
        counts[i] += 1
    for i, f in enumerate(fractions):  # a small class still reaches validation and test
        while f > 0 and counts[i] == 0 and max(counts) > 1:
            counts[counts.index(max(counts))] -= 1
            counts[i] += 1
    return counts


def split_by_patient(
    dataset: Dataset | DatasetDict,
    seed: int = 0,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
) -> DatasetDict:
    """Split rows so each patient is in one split, stratified by the patient's class.

    A `DatasetDict` is merged first (e.g. Kermany's own train/test, which share
    patients) and split again. Same data and seed -> same split. Row order inside a
    split follows the input. Splits with fraction 0 are left out.
    """
    if isinstance(dataset, DatasetDict):
        dataset = concatenate_datasets(list(dataset.values()))
    fractions = {name: float(f) for name, f in fractions.items() if f}
    if not fractions or any(f < 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"Split fractions must be non-negative and sum to 1, got {dict(fractions)}.")
    if len(dataset) == 0:
        raise ValueError("Cannot split an empty dataset.")

    keys = patient_keys(dataset)
    if any(k.startswith("image:") for k in keys):
        warnings.warn("Some rows have no patient_id: each such image is treated as its own patient, so "
                      "near-duplicate B-scans of one eye may land in different splits.", stacklevel=2)
    by_class: dict[int, list[str]] = defaultdict(list)
    for key, label in sorted(patient_labels(keys, dataset["label"]).items()):
        by_class[label].append(key)

    rng = random.Random(seed)
    split_of: dict[str, str] = {}
    names, shares = list(fractions), list(fractions.values())
    for label in sorted(by_class):
        patients = by_class[label]
        rng.shuffle(patients)
        start = 0
        for name, count in zip(names, _allocate(len(patients), shares)):
            for key in patients[start : start + count]:
                split_of[key] = name
            start += count

    rows: dict[str, list[int]] = {name: [] for name in names}
    for index, key in enumerate(keys):
        rows[split_of[key]].append(index)
    dsdict = DatasetDict({name: dataset.select(idx) for name, idx in rows.items() if idx})
    check_no_patient_leakage(dsdict)
    return dsdict


def check_no_patient_leakage(dsdict: DatasetDict) -> None:
    """Raise when a patient (or the same image) appears in more than one split."""
    for column, what in (("patient_id", "patient"), ("image_id", "image")):
        where: dict[str, set[str]] = defaultdict(set)
        for split, ds in dsdict.items():
            for value in set(ds[column]):
                if value is not None:
                    where[value].add(split)
        leaked = {value: sorted(splits) for value, splits in where.items() if len(splits) > 1}
        if leaked:
            examples = "; ".join(f"{v} in {s}" for v, s in sorted(leaked.items())[:10])
            raise ValueError(
                f"Leakage: {len(leaked)} {what}(s) appear in more than one split ({examples}"
                f"{' ...' if len(leaked) > 10 else ''}). Re-split with "
                "medicraft_hf.data.split.split_by_patient (or `medicraft build`) so each patient is in one split."
            )
