"""Automatic anatomical plausibility check of one OCT B-scan.

The medical team of the original study judged generated images by hand and named four
failures: a doubled fovea, an absent fovea, a hypoplastic (too shallow) fovea and a
totally corrupted image. This check finds the same things without a reader, by the
definitions of `docs/anatomy_check.md`:

1. the inner limiting membrane (ILM) and the RPE are traced as minimum-cost paths over
   the columns (`anatomy_trace`): they follow deep pits, domes and fluid without jumping;
2. the retinal thickness between them is the measured profile; its dips are pits, each
   with its depth as a fraction of the rim thickness within 1.5 mm on either side (a
   lesion that lifts the whole retina moves both surfaces and is no pit);
3. the image is corrupted when no retina stands out of the background or its columns do
   not continue one another (cut, shifted, flipped, shuffled).

`check_anatomy(image)` returns an `AnatomyResult`: a verdict among `ANATOMY_VERDICTS`, a
plausibility score in [0, 1] (above 0.5 only for ``ok``), a confidence in that verdict
and the probability of each verdict (`details["verdict_probs"]`), and the measurements.
Images of any size are resampled to one working grid; lengths are fractions of the width
of a 6 mm scan (the radial protocol). Validation: `docs/anatomy_validation.md`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.signal import find_peaks

from medicraft_hf.data.images import IMAGE_EXTENSIONS
from medicraft_hf.evaluation.anatomy_trace import MAX_STEP, column_match, trace_surfaces

ANATOMY_VERDICTS: tuple[str, ...] = ("ok", "doubled_fovea", "no_fovea", "hypoplastic_fovea", "corrupted")

WORK_SIZE = (128, 256)  # (H, W) grid every image is resampled to
SCAN_MM = 6.0  # a scan's width; millimetres below are fractions of it

# The definitions (docs/anatomy_check.md). Depths: (rim - centre) / rim, rim = the lower of
# the thickest retina within RIM_MM on either side of the pit.
OK_DEPTH = 0.10  # a normal fovea: at least this deep (normal eyes ~0.21-0.36)
PIT_MIN_DEPTH = 0.025  # below this no pit is resolved: no fovea (Thomas grades 2-4)
RIM_MM = 1.5
DOUBLE_MIN_SEP_MM = 1.0  # two pits at least this far apart, each at least OK_DEPTH deep
PIT_SMOOTH_MM = 0.1  # thickness profile smoothing for normal and doubled pits
SHALLOW_SMOOTH_MM = 0.25  # ... and for telling a shallow pit from none
CENTRAL_MM = 1.2  # a radial scan's fovea lies within this distance of the centre
MIN_CONTRAST = 2.5  # retina over vitreous, in units of the vitreous noise
MAX_BREAK_FRACTION = 0.01  # column boundaries that match at no shift (2 of 253 pass, 3 do not)
BREAK_DROP = 0.45  # a boundary whose match is this far below the image's median match
MIN_PROFILE_CORR = 0.5  # columns flattened to the ILM against the median column ...
MAX_BAD_COLUMNS = 0.35  # ... at most this fraction below MIN_PROFILE_CORR


@dataclass
class AnatomyResult:
    verdict: str
    score: float  # plausibility in [0, 1]; above 0.5 only for "ok"
    details: dict = field(default_factory=dict)

    @property
    def confidence(self) -> float:
        """Probability of the verdict given (see `details["verdict_probs"]`)."""
        return float(self.details.get("confidence", 1.0))

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "score": self.score, **self.details}


def _as_gray(image) -> np.ndarray:
    """PIL image, path or array -> float32 array in [0, 1] on the working grid."""
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        image = Image.open(image)
    if isinstance(image, Image.Image):
        pil = image.convert("L") if image.mode not in ("L", "I;16", "I", "F") else image
        arr = np.asarray(pil, dtype=np.float32)
    else:
        arr = np.asarray(image, dtype=np.float32)
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = np.moveaxis(arr, 0, -1)  # CHW tensor layout
        if arr.ndim == 3:
            arr = arr.mean(axis=-1)
    if arr.ndim != 2 or min(arr.shape) < 16:
        raise ValueError(f"check_anatomy needs a 2-D grayscale B-scan of at least 16x16 pixels, got shape {arr.shape}.")
    lo, hi = float(arr.min()), float(arr.max())
    arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    # Box-average when shrinking (a large scan's speckle averages out), bilinear when growing.
    resample = Image.BOX if arr.shape[0] > WORK_SIZE[0] else Image.BILINEAR
    work = Image.fromarray(arr.astype(np.float32), mode="F").resize(WORK_SIZE[::-1], resample)
    return np.asarray(work, dtype=np.float32)


def find_pits(thickness: np.ndarray, smooth_mm: float = 0.1) -> list[dict]:
    """Dips of a thickness profile, deepest first: position (fraction of the width) and depth.

    Depth = (rim - floor) / rim, rim = the lower of the maxima within `RIM_MM` on either
    side, capped by the profile's 80th percentile (a fluid pocket or a thickened lesion
    beside a pit does not deepen it).
    """
    W = thickness.shape[0]
    t = gaussian_filter(np.asarray(thickness, float), smooth_mm / SCAN_MM * W, mode="nearest")
    cap = max(float(np.percentile(t, 80)), 1e-6)
    reach = int(round(RIM_MM / SCAN_MM * W))
    peaks, _ = find_peaks(-t)
    pits = []
    for p in peaks:
        if not 0.04 * W <= p <= 0.96 * W:
            continue
        rim = min(t[max(0, p - reach): p + 1].max(), t[p: p + reach + 1].max(), cap)
        if rim <= 0:
            continue
        pits.append({"x": round(p / W, 4), "depth": round(float(max(rim - t[p], 0.0) / rim), 4)})
    return sorted(pits, key=lambda d: -d["depth"])


def _sigmoid(z):
    return float(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))


def verdict_from_measurements(pits: list[dict], shallow_pits: list[dict], contrast: float, break_fraction: float,
                              bad_columns: float) -> tuple[str, dict, dict]:
    """The verdict by the definitions, each verdict's probability, and the fovea measured.

    `pits` are measured on the thickness smoothed over `PIT_SMOOTH_MM` (a narrow pit keeps
    its depth), `shallow_pits` over `SHALLOW_SMOOTH_MM`: a shallow pit is wide, and
    the wider average tells it from the ripple of a flat retina.
    """
    central = [p for p in shallow_pits if abs(p["x"] - 0.5) * SCAN_MM <= CENTRAL_MM]
    fovea = max(central or [{"x": float("nan"), "depth": 0.0}], key=lambda p: p["depth"])
    deep = [p for p in pits if p["depth"] >= OK_DEPTH]
    if deep and deep[0]["depth"] > fovea["depth"]:
        fovea = deep[0]  # an off-centre but normal pit still is the fovea
    pairs = [(a, b) for i, a in enumerate(pits[:6]) for b in pits[i + 1:6]
             if abs(a["x"] - b["x"]) * SCAN_MM >= DOUBLE_MIN_SEP_MM]
    second = max(pairs, key=lambda ab: min(ab[0]["depth"], ab[1]["depth"]), default=None)
    second_depth = min(second[0]["depth"], second[1]["depth"]) if second else 0.0

    corrupted = contrast < MIN_CONTRAST or break_fraction > MAX_BREAK_FRACTION or bad_columns > MAX_BAD_COLUMNS
    d = fovea["depth"]
    if corrupted:
        verdict = "corrupted"
    elif second_depth >= OK_DEPTH:
        verdict = "doubled_fovea"
    elif d >= OK_DEPTH:
        verdict = "ok"
    elif d >= PIT_MIN_DEPTH:
        verdict = "hypoplastic_fovea"
    else:
        verdict = "no_fovea"
    # Soft versions of the same cuts: how far each measure lies from its boundary, in units
    # of its typical measurement error on the validation styles.
    p_corrupt = max(_sigmoid((MIN_CONTRAST - contrast) / 0.3), _sigmoid((break_fraction - MAX_BREAK_FRACTION) / 0.004),
                    _sigmoid((bad_columns - MAX_BAD_COLUMNS) / 0.05))
    p_double = _sigmoid((second_depth - OK_DEPTH) / 0.015)
    p_pit = _sigmoid((d - PIT_MIN_DEPTH) / 0.007)
    p_deep = _sigmoid((d - OK_DEPTH) / 0.015)
    good = (1 - p_corrupt) * (1 - p_double)
    probs = {"ok": good * p_deep, "doubled_fovea": (1 - p_corrupt) * p_double, "no_fovea": good * (1 - p_pit),
             "hypoplastic_fovea": good * max(p_pit - p_deep, 0.0), "corrupted": p_corrupt}
    total = sum(probs.values())
    probs = {k: round(v / total, 4) for k, v in probs.items()}
    return verdict, probs, {"fovea": fovea, "second_depth": second_depth, "pair": second}


def check_anatomy(image) -> AnatomyResult:
    """Classify one B-scan as ok / doubled_fovea / no_fovea / hypoplastic_fovea / corrupted."""
    img = _as_gray(image)
    H, W = img.shape
    tr = trace_surfaces(img)
    ilm, rpe, g = tr["ilm"], tr["rpe"], tr["smoothed"]

    # Contrast of the traced retina over the vitreous noise above it.
    rows = np.arange(H)[:, None]
    vitreous = img[rows < ilm[None] - 3]
    retina = img[(rows > ilm[None] + 1) & (rows < rpe[None] - 1)]
    if vitreous.size < 0.01 * img.size or retina.size < 0.02 * img.size:
        contrast = 0.0
    else:
        wide = gaussian_filter(img, (2.0, 4.0))  # speckle averaged over ~2x4 working pixels
        vit = wide[rows < ilm[None] - 3]
        ret = wide[(rows > ilm[None] + 1) & (rows < rpe[None] - 1)]
        contrast = float((np.median(ret) - np.median(vit)) / (float(np.std(vit)) + 1e-3))
    # Continuity: neighbouring columns are the same profile shifted by a few rows.
    match = column_match(img)
    break_fraction = float(np.mean(match < np.median(match) - BREAK_DROP))
    # Layering: columns flattened to the ILM share one profile.
    offsets = np.arange(-int(0.05 * H), int(0.45 * H))
    idx = np.clip(np.round(ilm)[None, :].astype(int) + offsets[:, None], 0, H - 1)
    profiles = np.take_along_axis(g, idx, axis=0)
    profiles = profiles - profiles.mean(axis=0)
    ref = np.median(profiles, axis=1, keepdims=True)
    corr = (profiles * ref).sum(axis=0) / (np.linalg.norm(profiles, axis=0) * np.linalg.norm(ref) + 1e-9)
    bad_columns = float(np.mean(corr < MIN_PROFILE_CORR))

    thickness = rpe - ilm
    pits = find_pits(thickness, PIT_SMOOTH_MM)
    verdict, probs, m = verdict_from_measurements(pits, find_pits(thickness, SHALLOW_SMOOTH_MM), contrast,
                                                  break_fraction, bad_columns)
    fovea = m["fovea"]
    quality = min(np.clip(contrast / (2 * MIN_CONTRAST), 0, 1), np.clip(1 - break_fraction / (2 * MAX_BREAK_FRACTION), 0, 1),
                  np.clip(1 - bad_columns / (2 * MAX_BAD_COLUMNS), 0, 1))
    # Plausibility: above one half only for "ok", rising with the probability of "ok".
    score = 0.5 + 0.5 * probs["ok"] if verdict == "ok" else min(0.49, 0.5 * probs["ok"])
    steps = np.abs(np.diff(ilm))
    details = {
        "confidence": probs[verdict],
        "verdict_probs": probs,
        "num_pits": 2 if verdict == "doubled_fovea" else int(fovea["depth"] >= PIT_MIN_DEPTH),
        "pit_depth": round(float(fovea["depth"]), 4),
        "second_pit_depth": round(float(m["second_depth"]), 4),
        "pits": pits[:4],
        "fovea_x": round(float(fovea["x"]), 4) if fovea["depth"] >= PIT_MIN_DEPTH else float("nan"),
        "contrast": round(contrast, 3),
        "profile_corr": round(float(np.median(corr)), 4),
        "bad_columns": round(bad_columns, 4),
        "break_fraction": round(break_fraction, 4),
        "jump_fraction": round(float(np.mean(steps >= MAX_STEP - 0.5)), 4),  # trace at its steepest allowed step
        "quality": round(float(quality), 4),
        "retina_thickness": round(float(np.median(thickness)) / H, 4),  # fraction of height
    }
    return AnatomyResult(verdict, round(float(score), 4), details)


def check_images(items) -> list[dict]:
    """`check_anatomy` over `(image_id, image, label)` triples -> one result dict each."""
    results = []
    for image_id, image, label in items:
        result = check_anatomy(image)
        results.append({"image_id": image_id, "label": label, **result.to_dict()})
    return results


def summarize(results: list[dict]) -> dict:
    """Verdict counts and fractions, overall and per label, and the mean score."""
    def counts(rows):
        n = len(rows)
        c = {v: sum(r["verdict"] == v for r in rows) for v in ANATOMY_VERDICTS}
        return {"n": n, "counts": c, "ok_fraction": round(c["ok"] / n, 4) if n else None,
                "mean_score": round(float(np.mean([r["score"] for r in rows])), 4) if n else None}

    summary = {"overall": counts(results)}
    labels = sorted({r["label"] for r in results if r["label"] is not None})
    if labels:
        summary["per_label"] = {label: counts([r for r in results if r["label"] == label]) for label in labels}
    return summary


def _iter_source(source: str, split: str | None = None, problems=None, max_pixels: int | None = None):
    """(image_id, image, label) from an image folder, a saved dataset or a Hub dataset id.

    Image files are read by the builders' checked reader (`medicraft_hf.data.images.read_image`:
    pixel budget before decoding, one frame, no truncation); a file it refuses goes to
    `problems` (a `medicraft_hf.data.problems.Problems`) and is not yielded. Folders are
    listed as `medicraft build` lists them (`medicraft_hf.data.folders.image_files`).
    """
    from pathlib import Path

    from medicraft_hf.data.folders import image_files
    from medicraft_hf.data.images import InvalidImageError, read_image
    from medicraft_hf.sources import is_hub_id, saved_dataset_format

    def read(image_id, file, label):
        try:
            return [(image_id, read_image(file, max_pixels=max_pixels), label)]
        except InvalidImageError as err:
            problems.add(err.file, err.reason, err.fix)
            return []

    path = Path(source)
    if not os.path.lexists(path) and not is_hub_id(source):
        raise FileNotFoundError(f"{source} does not exist; give an OCT dataset folder, a Hub dataset id (org/name), "
                                "an image or an image folder.")
    if not path.is_dir() and path.suffix.lower() in IMAGE_EXTENSIONS:  # one image (or a broken link to one)
        yield from read(path.name, path, None)
        return
    is_dataset = path.is_dir() and saved_dataset_format(path) is not None
    files = image_files(path) if path.is_dir() and not is_dataset else []
    if files:
        for p in files:
            yield from read(str(p.relative_to(path)), p, p.parent.name if p.parent != path else None)
        return
    from medicraft_hf.data.load import load_oct_dataset

    dsdict = load_oct_dataset(source)
    splits = [split] if split else list(dsdict)
    for name in splits:
        if name not in dsdict:
            raise ValueError(f"{source} has no split {name!r}; it has {list(dsdict)}.")
        ds = dsdict[name]
        names = ds.features["label"].names
        for row in ds:
            yield row["image_id"], row["image"], names[row["label"]]


def check_source(source: str, split: str | None = None, problems=None, max_pixels: int | None = None) -> list[dict]:
    """Check every image of an image folder, a saved OCT dataset or a Hub dataset id.

    A file the checked reader refuses (see `_iter_source`) goes to `problems` when given;
    without it, the first pass over everything ends in one `InvalidInputError` naming
    every such file.
    """
    from medicraft_hf.data.problems import Problems

    collected = problems if problems is not None else Problems()
    results = check_images(_iter_source(source, split, collected, max_pixels))
    if problems is None:
        collected.raise_if_any("images")
    if not results and not collected:
        raise ValueError(f"No images found in {source}: give an OCT dataset folder, a Hub dataset id, an image "
                         f"or a folder of {', '.join(IMAGE_EXTENSIONS)} files.")
    return results


# What each phantom defect should be called.
EXPECTED_VERDICT = {None: "ok", "double_fovea": "doubled_fovea", "flat_fovea": "hypoplastic_fovea",
                    "no_fovea": "no_fovea", "heavy_noise": "corrupted", "scrambled_layers": "corrupted"}


def validate_on_phantom(size=(64, 128), per_class: int = 10, seed: int = 1000) -> dict:
    """Accuracy of `check_anatomy` on phantom scans with known truth, clean and broken.

    For each phantom defect (and clean scans) and each class, `per_class` scans of
    distinct random patients and planes are checked. Returns per-category accuracy, the
    confusion matrix (expected verdict -> found verdict) and accuracy per class.
    """
    from medicraft_hf.data.phantom import PHANTOM_CLASSES, PhantomPatient, render_bscan

    confusion = {e: {v: 0 for v in ANATOMY_VERDICTS} for e in EXPECTED_VERDICT}
    per_label = {c: [0, 0] for c in PHANTOM_CLASSES}
    for defect in EXPECTED_VERDICT:
        for ci, label in enumerate(PHANTOM_CLASSES):
            for i in range(per_class):
                rng = np.random.default_rng([seed, ci, i])
                patient = PhantomPatient.sample(label, rng)
                image, _ = render_bscan(patient, float(rng.choice(np.arange(12) * 30)), size, seed=rng, defect=defect)
                verdict = check_anatomy(image).verdict
                confusion[defect][verdict] += 1
                if defect is None:
                    per_label[label][0] += verdict == "ok"
                    per_label[label][1] += 1
    key = {None: "clean"}
    return {
        "size": list(size),
        "per_class": per_class,
        "seed": seed,
        "accuracy": {key.get(d, d): round(confusion[d][e] / sum(confusion[d].values()), 4) for d, e in EXPECTED_VERDICT.items()},
        "clean_ok_by_class": {c: round(k / n, 4) for c, (k, n) in per_label.items()},
        "expected": {key.get(d, d): e for d, e in EXPECTED_VERDICT.items()},
        "confusion": {key.get(d, d): row for d, row in confusion.items()},
    }
