"""Seeded, class-stratified train/validation/test splits by patient, and the leakage check.

The 12 radial B-scans of one exam are near-duplicates: splitting by image would put
copies of test images in training. Every patient therefore lands in exactly one split,
and rows without a patient id are refused unless image-level splitting is asked for
(`split_by="image"`, which the dataset card then states).
"""

from __future__ import annotations

import random
import warnings
from collections import Counter, defaultdict
from collections.abc import Mapping

from datasets import Dataset, DatasetDict, concatenate_datasets

from medicraft_hf.data.problems import MissingPatientIdError

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.7, "validation": 0.15, "test": 0.15}
# patient: every row needs a patient id; image: a row without one is split on its own.
SPLIT_BY: tuple[str, ...] = ("patient", "image")


def check_split_by(split_by: str) -> str:
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by must be one of {list(SPLIT_BY)}, got {split_by!r}")
    return split_by


def patient_keys(dataset: Dataset) -> list[str]:
    """The grouping key of each row: its patient id, or (no id) the row's own image id.

    A row without a patient id is its own patient: a folder without ids cannot tell
    which scans come from one eye, so such datasets may still leak (only with
    `split_by="image"`; the card says so).
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


def _allocate(n: int, fractions: list[float], taken: list[int] | None = None) -> list[int]:
    """Split n items by fractions (largest remainder); every split with a share gets one when n allows.

    When n is too small for every split, the splits left out are those that already have
    the most patients (`taken`, from the classes allocated before), so that small classes
    take turns instead of all missing the same split.
    """
    taken = taken or [0] * len(fractions)
    exact = [n * f for f in fractions]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], -fractions[i]))[: n - sum(counts)]:
        counts[i] += 1
    while max(counts) > 1:  # a small class still reaches validation and test
        empty = [i for i, f in enumerate(fractions) if f > 0 and counts[i] == 0]
        if not empty:
            break
        i = min(empty, key=lambda i: (taken[i], i))
        counts[counts.index(max(counts))] -= 1
        counts[i] += 1
    return counts


def _fill_empty_splits(groups: dict[str, dict[int, list[str]]]) -> None:
    """Move one patient into each split that the per-class allocation left empty.

    Only when no class is big enough to reach that split (e.g. three classes of one
    patient each). The patient comes from the fullest split, from its biggest class;
    there is one with two patients or more, as there are at least as many patients as splits.
    """
    def size(name: str) -> int:
        return sum(map(len, groups[name].values()))

    for name in groups:
        if size(name) == 0:
            donor = max(groups, key=size)
            label = max(groups[donor], key=lambda label: len(groups[donor][label]))
            groups[name][label] = [groups[donor][label].pop()]


def split_by_patient(
    dataset: Dataset | DatasetDict,
    seed: int = 0,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    *,
    split_by: str = "patient",
) -> DatasetDict:
    """Split rows so each patient is in one split, stratified by the patient's class.

    A `DatasetDict` is merged first (e.g. Kermany's own train/test, which share
    patients) and split again. Same data and seed -> same split. Row order inside a
    split follows the input. Splits with fraction 0 are left out; every other split gets
    at least one patient (a ValueError when there are fewer patients than splits).

    Rows without a `patient_id` raise `MissingPatientIdError`, unless `split_by="image"`:
    then each such row is split as a patient of its own (rows with an id still stay
    together), and a patient's B-scans may land in several splits.
    """
    check_split_by(split_by)
    if isinstance(dataset, DatasetDict):
        dataset = concatenate_datasets(list(dataset.values()))
    fractions = {name: float(f) for name, f in fractions.items() if f}
    if not fractions or any(f < 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"Split fractions must be non-negative and sum to 1, got {dict(fractions)}.")
    if len(dataset) == 0:
        raise ValueError("Cannot split an empty dataset.")

    keys = patient_keys(dataset)
    without_id = [i for p, i in zip(dataset["patient_id"], dataset["image_id"]) if p is None]
    if without_id and split_by == "patient":
        raise MissingPatientIdError([f"image_id {i}" for i in without_id], len(dataset))
    if without_id:
        warnings.warn(f"{len(without_id)} row(s) have no patient_id: each such image is treated as its own patient, "
                      "so near-duplicate B-scans of one eye may land in different splits.", stacklevel=2)
    by_class: dict[int, list[str]] = defaultdict(list)
    for key, label in sorted(patient_labels(keys, dataset["label"]).items()):
        by_class[label].append(key)
    names, shares = list(fractions), list(fractions.values())
    num_patients = sum(map(len, by_class.values()))
    if num_patients < len(names):
        raise ValueError(f"{num_patients} patient(s) cannot fill the {len(names)} splits {names}: every split needs "
                         "one patient at least; add patients, or give fewer splits a non-zero fraction.")

    rng = random.Random(seed)
    groups: dict[str, dict[int, list[str]]] = {name: {} for name in names}
    for label in sorted(by_class):
        patients = by_class[label]
        rng.shuffle(patients)
        start, taken = 0, [sum(map(len, groups[name].values())) for name in names]
        for name, count in zip(names, _allocate(len(patients), shares, taken)):
            groups[name][label] = patients[start : start + count]
            start += count
    _fill_empty_splits(groups)
    split_of = {key: name for name, by_label in groups.items() for members in by_label.values() for key in members}

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
