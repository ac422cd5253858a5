"""Procedural OCT phantom: realistic radial macular B-scans with known ground truth.

No real OCT data can be used here, so the phantom is the demo data, the test data and
the benchmark. It follows the anatomy facts of `docs/oct-domain` (shared docs):

* layers from the vitreous down: ILM/RNFL (hyper), GCL (hypo), IPL, INL (hypo), OPL
  (hyper), ONL (thick, darkest), ELM (thin line), EZ (hyper), IZ, RPE (brightest);
  below Bruch's membrane a granular choroid with dark vessel lumens that fades with
  depth, then sclera;
* a foveal pit (~2.2-2.45 mm wide, 70-120 um deep) where the inner layers vanish and
  the ONL thickens;
* multiplicative speckle (Gamma intensity, grains elongated laterally), log-compressed.

Classes: ``healthy``; ``nevus`` (flat, homogeneous, hyper-reflective choroidal mass,
often with overlying drusen); ``nevus_fluid`` (nevus plus a subretinal fluid pocket and
shaggy photoreceptors); ``melanoma`` (dome-shaped choroidal elevation, dense optical
shadowing, subretinal fluid, loss of the EZ, lipofuscin dots).

An exam is 12 radial B-scans through the fovea, one every 30 degrees. A lesion is a disc
on the fundus, so its position along the scan moves with the plane angle, and a plane
may miss a small, eccentric lesion. The exam (and each of its rows) keeps the
patient's label even then, as in a clinic, where the diagnosis belongs to the eye.

Each B-scan comes with ground truth (JSON in the ``ground_truth`` column): fovea x and
pit depth, the ILM and RPE surfaces as polylines, the lesion and fluid extents, and the
defect, if one was asked for. ``render_bscan(..., defect=...)`` draws the failure modes
the medical team saw in generated images (doubled, hypoplastic or absent fovea, noise,
scrambled layers) so that the anatomy check can be validated.

This module is the public entry: cohorts, schema rows, datasets and the contact sheet.
The eye's anatomy lives in `phantom_anatomy`, the drawing of one B-scan in
`phantom_render` (over the shapes and textures of `phantom_draw`); their public names
are re-exported here.

Everything is vectorized numpy and deterministic: the same seed gives the same pixels.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from medicraft_hf.data.phantom_anatomy import PHANTOM_CLASSES, PhantomPatient
from medicraft_hf.data.phantom_geometry import FRAME_DEPTH_UM, SCAN_WIDTH_MM, SURFACE_POINTS
from medicraft_hf.data.phantom_render import DEFECTS, render_bscan
from medicraft_hf.schema import CLASS_NAMES, DEFAULT_SIZE, RADIAL_PLANES_DEG, empty_row

__all__ = [
    "DEFAULT_CLASS_WEIGHTS", "DEFECTS", "FRAME_DEPTH_UM", "PHANTOM_CLASSES", "PHANTOM_DESCRIPTION", "SCAN_WIDTH_MM",
    "SURFACE_POINTS", "PhantomPatient", "build_phantom_dataset", "contact_sheet", "phantom_bscan", "phantom_patients",
    "patient_rows", "phantom_rows", "plane_shows_label", "render_bscan", "save_phantom_dataset",
]

# Clinic-like imbalance, so that class balancing matters downstream.
DEFAULT_CLASS_WEIGHTS: dict[str, float] = {"healthy": 0.4, "nevus": 0.3, "nevus_fluid": 0.15, "melanoma": 0.15}


def _class_counts(num_patients: int, names: Sequence[str], weights: np.ndarray) -> list[int]:
    """Largest-remainder allocation; every class with weight > 0 gets a patient if it can."""
    raw = weights / weights.sum() * num_patients
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts))[: num_patients - counts.sum()]:
        counts[i] += 1
    if num_patients >= int((weights > 0).sum()):
        for i in np.flatnonzero((weights > 0) & (counts == 0)):
            counts[int(np.argmax(counts))] -= 1
            counts[i] = 1
    return counts.tolist()


def _resolve_weights(class_names: Sequence[str], class_weights) -> np.ndarray:
    unknown = [c for c in class_names if c not in PHANTOM_CLASSES]
    if unknown:
        raise ValueError(f"The phantom cannot draw classes {unknown}; it knows {list(PHANTOM_CLASSES)}.")
    if class_weights is None:
        weights = [DEFAULT_CLASS_WEIGHTS[c] for c in class_names]
    elif isinstance(class_weights, Mapping):
        extra = [c for c in class_weights if c not in class_names]
        if extra:
            raise ValueError(f"class_weights names {extra} that are not in class_names {list(class_names)}.")
        weights = [float(class_weights.get(c, 0.0)) for c in class_names]
    else:
        weights = [float(w) for w in class_weights]
        if len(weights) != len(class_names):
            raise ValueError(f"Got {len(weights)} class weights for {len(class_names)} classes {list(class_names)}.")
    weights = np.asarray(weights, dtype=float)
    if (weights < 0).any() or not np.isfinite(weights).all() or weights.sum() <= 0:
        raise ValueError(f"Class weights must be finite, >= 0 and not all zero; got {weights.tolist()}.")
    return weights


def phantom_patients(
    num_patients: int, seed: int = 0, class_names: Sequence[str] = CLASS_NAMES, class_weights=None
) -> list[PhantomPatient]:
    """The patients of a phantom cohort, with class counts following `class_weights`."""
    if int(num_patients) < 1:
        raise ValueError(f"num_patients must be >= 1, got {num_patients}.")
    weights = _resolve_weights(class_names, class_weights)
    counts = _class_counts(int(num_patients), class_names, weights)
    labels = [name for name, n in zip(class_names, counts) for _ in range(n)]
    np.random.default_rng([seed, 0x9A7]).shuffle(labels)
    return [PhantomPatient.sample(label, np.random.default_rng([seed, i, 1])) for i, label in enumerate(labels)]


def phantom_rows(
    num_patients: int,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    class_names: Sequence[str] = CLASS_NAMES,
    class_weights: Mapping[str, float] | Sequence[float] | None = None,
    planes_deg: Sequence[float] = RADIAL_PLANES_DEG,
) -> Iterator[dict]:
    """Yield schema rows for `num_patients` phantom exams (one exam of 12 radial planes each).

    Rows follow `medicraft_hf.schema.oct_features(class_names)`: the image is a PIL "L"
    image, `label` the class id, `source` "phantom", `ground_truth` a JSON string.
    Deterministic: the same arguments give the same rows, pixel for pixel.
    """
    patients = phantom_patients(num_patients, seed, class_names, class_weights)
    yield from patient_rows(patients, seed=seed, size=size, class_names=class_names, planes_deg=planes_deg)


def patient_rows(
    patients: Sequence[PhantomPatient],
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    class_names: Sequence[str] = CLASS_NAMES,
    planes_deg: Sequence[float] = RADIAL_PLANES_DEG,
    first: int = 0,
) -> Iterator[dict]:
    """Schema rows of these patients' exams; patient `k` is number `first + k` (its id and its scans' seeds)."""
    from PIL import Image

    class_names = list(class_names)
    for i, patient in enumerate(patients, start=first):
        patient_id = f"phantom-{i + 1:04d}"
        for j, plane in enumerate(planes_deg):
            image, gt = render_bscan(patient, plane, size, seed=[seed, i, 2, j])
            row = empty_row()
            row.update(
                image=Image.fromarray(image),
                label=class_names.index(patient.label),
                patient_id=patient_id,
                exam_id=f"{patient_id}-e1",
                eye=patient.eye,
                plane_deg=float(plane),
                source="phantom",
                image_id=f"phantom-s{seed}-{i + 1:04d}-{int(round(plane)):03d}",
                ground_truth=json.dumps(gt, separators=(",", ":")),
            )
            yield row


def plane_shows_label(ground_truth: str | Mapping | None) -> bool | None:
    """Does this plane show what its label says? From a phantom row's ground truth.

    True for a healthy eye; for a lesion, the visibility flags of the clinic and clinic-v2
    definitions (the benchmarks'): the lesion's body, and for nevus_fluid also its fluid. None
    when the ground truth does not record visibility (the study phantom, real or synthetic rows).
    """
    if ground_truth is None:
        return None
    gt = json.loads(ground_truth) if isinstance(ground_truth, str) else ground_truth
    if gt.get("definitions", "study") == "study":  # only the benchmarks' definitions record visibility
        return None
    lesion = gt.get("lesion")
    if lesion is None:
        return True
    return bool(lesion["visible"] and (lesion["type"] != "nevus_fluid" or lesion["fluid_visible"]))


def phantom_bscan(
    label: str = "healthy",
    seed: int = 0,
    plane_deg: float = 0.0,
    size: tuple[int, int] = DEFAULT_SIZE,
    defect: str | None = None,
) -> tuple[np.ndarray, dict]:
    """One B-scan of a random patient of class `label` (for validation, demos and tests)."""
    patient = PhantomPatient.sample(label, np.random.default_rng([seed, 7]))
    return render_bscan(patient, plane_deg, size, seed=[seed, 8, int(plane_deg * 10)], defect=defect)


PHANTOM_DESCRIPTION = """Procedural OCT phantom made by `medicraft phantom`: radial macular B-scans drawn from
the anatomy facts (layer order and reflectivity, foveal pit, choroid fading with depth,
multiplicative speckle, log compression), for the classes healthy, choroidal nevus
(flat hyper-reflective mass, often drusen), nevus with subretinal fluid, and choroidal
melanoma (dome-shaped elevation, optical shadowing, fluid, loss of the ellipsoid zone).

Each patient has one exam of 12 radial B-scans through the fovea, one every 30 degrees.
A lesion is a disc on the fundus, so its position moves with the plane angle and a plane
may miss an eccentric lesion: every row keeps the patient's (eye's) label, as in a
clinic. The `ground_truth` column (JSON) gives the fovea position and pit depth, the ILM
and RPE surfaces (polylines over `surface_x`), the lesion and fluid extents in pixels.
No real patient is involved: `patient_id`s are synthetic (`phantom-0001`, ...)."""


def build_phantom_dataset(
    num_patients: int,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    class_names: Sequence[str] = CLASS_NAMES,
    class_weights: Mapping[str, float] | Sequence[float] | None = None,
    fractions: Mapping[str, float] | None = None,
):
    """Phantom rows -> `DatasetDict` split by patient (train/validation/test)."""
    from medicraft_hf.data.build import build_dataset_dict

    rows = phantom_rows(num_patients, seed=seed, size=size, class_names=class_names, class_weights=class_weights)
    return build_dataset_dict(rows, class_names, seed=seed, fractions=fractions)


def save_phantom_dataset(dsdict, out_dir, *, name: str | None = None, seed: int = 0, size=DEFAULT_SIZE, license: str = "mit",
                         preset=None):
    """Save a phantom `DatasetDict` in the Hub layout with its dataset card (`preset`: a `PhantomPreset`)."""
    from pathlib import Path

    from medicraft_hf.cards.dataset_card import dataset_card
    from medicraft_hf.data.build import save_dataset_dict

    description = PHANTOM_DESCRIPTION + f"\n\nMade with seed {seed} at {size[0]}x{size[1]} (HxW)."
    if preset is not None:
        description += "\n\n" + preset.describe()
    card = dataset_card(dsdict, name=name or Path(out_dir).name, source="phantom (procedural, medicraft_hf.data.phantom)",
                        description=description, license=license)
    return save_dataset_dict(dsdict, out_dir, card=card)


def contact_sheet(size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0, planes_deg: Sequence[float] = (0, 60, 120),
                  class_names: Sequence[str] = PHANTOM_CLASSES, defects: Sequence[str] = ()):
    """A labelled PIL image: one row per class (and per defect), one column per plane."""
    from PIL import Image, ImageDraw

    H, W = size
    pad, label_h = 4, 14
    rows = [(name, None) for name in class_names] + [("healthy", d) for d in defects]
    sheet = Image.new("L", (len(planes_deg) * (W + pad) + pad, len(rows) * (H + label_h + pad) + pad), 255)
    draw = ImageDraw.Draw(sheet)
    for r, (label, defect) in enumerate(rows):
        patient = PhantomPatient.sample(label, np.random.default_rng([seed, r, 7]))
        y = pad + r * (H + label_h + pad)
        for c, plane in enumerate(planes_deg):
            image, gt = render_bscan(patient, plane, size, seed=[seed, r, c], defect=defect)
            x = pad + c * (W + pad)
            sheet.paste(Image.fromarray(image), (x, y + label_h))
            lesion = gt["lesion"]
            seen = "" if lesion is None else ("  (lesion not in this plane)" if lesion["x_range"] is None else "")
            draw.text((x + 2, y + 1), f"{defect or label}  {patient.eye}  {plane:g} deg{seen}", fill=0)
    return sheet
