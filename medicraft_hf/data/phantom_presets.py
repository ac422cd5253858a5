"""Named phantom datasets: a fixed cohort (patients per split and class, seed, class definitions).

`benchmark-v1` is the usefulness benchmark (docs/benchmark.md): a clinic-like imbalanced
training split, a class-balanced validation split for early stopping and a class-balanced,
patient-held-out test split of 120 patients (1,440 scans), drawn with the "clinic" class
definitions (`phantom_anatomy.CLASS_DEFINITIONS`). Its seed differs from the training
phantom's (0), so none of its patients is one the demo model was trained on.
`benchmark-v2` (session 17) removes a shortcut benchmark-v1 left open: there a nevus_fluid
exam showed its (smaller, eccentric) nevus in 2-6 of its 12 planes, a nevus in 6-12, so a
classifier could name nevus_fluid by how few planes show a lesion, without seeing fluid. Its
"clinic-v2" definitions give every lesion class one footprint, a nevus-sized disc near the
fovea that most planes cross; its test split is 200 patients (2,400 scans), 50 per class, for
narrower intervals (the test split costs only prediction).
The training phantom itself (`medicraft phantom` without `--preset`) is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medicraft_hf.data.phantom_anatomy import PhantomPatient
from medicraft_hf.schema import CLASS_NAMES, DEFAULT_SIZE, RADIAL_PLANES_DEG


@dataclass(frozen=True)
class PhantomPreset:
    name: str
    seed: int
    definitions: str  # phantom_anatomy.CLASS_DEFINITIONS
    patients: dict[str, dict[str, int]]  # split -> class -> patients (one exam of 12 planes each)
    summary: str

    @property
    def class_names(self) -> list[str]:
        return list(CLASS_NAMES)

    def describe(self) -> str:
        splits = "; ".join(f"{split}: " + ", ".join(f"{c} {n}" for c, n in per_class.items())
                           + f" ({sum(per_class.values())} patients)" for split, per_class in self.patients.items())
        return f"Preset `{self.name}` (seed {self.seed}, {self.definitions} class definitions): {self.summary} {splits}."


PRESETS: dict[str, PhantomPreset] = {
    "benchmark-v1": PhantomPreset(
        name="benchmark-v1",
        seed=1017,
        definitions="clinic",
        patients={
            "train": {"healthy": 64, "nevus": 48, "nevus_fluid": 24, "melanoma": 24},  # 40/30/15/15, clinic-like
            "validation": {"healthy": 10, "nevus": 10, "nevus_fluid": 10, "melanoma": 10},
            "test": {"healthy": 30, "nevus": 30, "nevus_fluid": 30, "melanoma": 30},
        },
        summary=("the usefulness benchmark (docs/benchmark.md): imbalanced train, balanced validation and test. "
                 "Clinic class definitions: the fluid of nevus_fluid is a serous detachment over the nevus, seen in "
                 "the planes through it; `ground_truth.lesion` says per plane whether the lesion (`visible`) and "
                 "its fluid (`fluid_visible`) show."),
    ),
    "benchmark-v2": PhantomPreset(
        name="benchmark-v2",
        seed=1021,
        definitions="clinic-v2",
        patients={
            "train": {"healthy": 64, "nevus": 48, "nevus_fluid": 24, "melanoma": 24},  # as benchmark-v1
            "validation": {"healthy": 15, "nevus": 15, "nevus_fluid": 15, "melanoma": 15},
            "test": {"healthy": 50, "nevus": 50, "nevus_fluid": 50, "melanoma": 50},
        },
        summary=("benchmark-v1 without its lesion-extent shortcut (docs/benchmark.md): the clinic-v2 class "
                 "definitions draw one lesion footprint (size, distance from the fovea) for every lesion class, so "
                 "nevus, nevus_fluid and melanoma exams show their lesion in as many planes (6-12 of 12); the "
                 "classes differ only in height, fluid and drusen. A wider test split for narrower intervals."),
    ),
}


def get_preset(name: str) -> PhantomPreset:
    if name not in PRESETS:
        raise ValueError(f"Unknown phantom preset {name!r}; choose one of {list(PRESETS)}.")
    return PRESETS[name]


def preset_patients(preset: PhantomPreset) -> dict[str, list[tuple[int, PhantomPatient]]]:
    """Per split, (patient number, patient): numbers run on across splits, so ids and seeds never repeat."""
    out, number = {}, 0
    for k, (split, per_class) in enumerate(preset.patients.items()):
        labels = [name for name, n in per_class.items() for _ in range(n)]
        np.random.default_rng([preset.seed, 0x9A7, k]).shuffle(labels)
        out[split] = [(number + i, PhantomPatient.sample(label, np.random.default_rng([preset.seed, number + i, 1]),
                                                         preset.definitions)) for i, label in enumerate(labels)]
        number += len(labels)
    return out


def build_preset_dataset(name: str, size: tuple[int, int] = DEFAULT_SIZE, work_dir=None):
    """The preset's `DatasetDict` at `size` (HxW); the same name and size give the same pixels."""
    from datasets import DatasetDict

    from medicraft_hf.data.build import rows_to_dataset
    from medicraft_hf.data.phantom import patient_rows
    from medicraft_hf.data.split import check_no_patient_leakage

    preset = get_preset(name)
    splits = {}
    for split, numbered in preset_patients(preset).items():
        rows = (row for number, patient in numbered
                for row in patient_rows([patient], seed=preset.seed, size=size, class_names=preset.class_names,
                                        planes_deg=RADIAL_PLANES_DEG, first=number))
        splits[split] = rows_to_dataset(rows, preset.class_names, require_patient_id=True, require_every_class=True,
                                        work_dir=None if work_dir is None else f"{work_dir}/{split}")
    dsdict = DatasetDict(splits)
    check_no_patient_leakage(dsdict)
    return dsdict
