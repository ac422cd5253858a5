"""Calibrate the automatic anatomy check on expert verdicts.

The anatomy check gives each scan a plausibility score in [0, 1]; generation keeps a scan
when `score >= threshold`. The threshold chosen here is the cut that best separates what
experts called anatomically correct from what they did not (maximal Youden's J, i.e.
balanced accuracy), written to `calibration.json` for `medicraft generate
--anatomy-calibration`.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from medicraft_hf.io import write_json_atomic

CALIBRATION_FILE = "calibration.json"


def calibrate_threshold(scores, expert_correct) -> dict:
    """The anatomy-score threshold whose pass/fail best matches the experts' verdicts.

    Args:
        scores: automatic anatomy scores, one per expert rating.
        expert_correct: True where the expert judged the scan anatomically correct.

    Returns a dict with `threshold` (keep a scan when score >= threshold), the sensitivity
    (correct scans kept), specificity (faulty scans rejected), balanced accuracy and counts.
    Candidate thresholds lie midway between consecutive distinct scores; ties go to the
    lowest threshold (reject no more than needed).
    """
    scores = np.asarray(scores, dtype=float)
    correct = np.asarray(expert_correct, dtype=bool)
    if scores.shape != correct.shape or scores.ndim != 1:
        raise ValueError(f"Need one score per verdict, got {scores.shape} scores and {correct.shape} verdicts.")
    if np.isnan(scores).any():
        raise ValueError("Some ratings have no anatomy score; drop them or rerun the anatomy check.")
    n_pos, n_neg = int(correct.sum()), int((~correct).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"Calibration needs expert ratings of both correct and faulty scans, got {n_pos} correct "
            f"and {n_neg} faulty; review more scans first."
        )
    distinct = np.unique(scores)
    candidates = np.concatenate([[distinct[0]], (distinct[:-1] + distinct[1:]) / 2, [np.nextafter(distinct[-1], np.inf)]])
    best = None
    for threshold in candidates:
        keep = scores >= threshold
        sensitivity = float((keep & correct).sum() / n_pos)
        specificity = float((~keep & ~correct).sum() / n_neg)
        youden = sensitivity + specificity - 1
        if best is None or youden > best["youden_j"] + 1e-12:
            best = {
                "threshold": float(threshold),
                "youden_j": youden,
                "balanced_accuracy": (sensitivity + specificity) / 2,
                "sensitivity": sensitivity,
                "specificity": specificity,
                "rejection_rate": float((~keep).mean()),
            }
    return {**best, "criterion": "youden", "pass_rule": "score >= threshold", "n_ratings": int(scores.size),
            "n_expert_correct": n_pos, "n_expert_faulty": n_neg}


def calibrate_from_ratings(ratings) -> dict:
    """Calibrate on every rating that carries an anatomy score (a `datasets.Dataset` or DataFrame)."""
    df = ratings.to_pandas() if hasattr(ratings, "to_pandas") else ratings
    df = df[df["auto_score"].notna()]
    result = calibrate_threshold(df["auto_score"].to_numpy(), (df["verdict"] == "correct").to_numpy())
    result.update(
        rounds=sorted(df["round"].dropna().unique().tolist()),
        reviewers=int(df["reviewer"].nunique()),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    return result


def write_calibration(calibration: dict, path: str | os.PathLike) -> Path:
    """Write `calibration.json` (a folder gets the file inside it), atomically."""
    path = Path(path)
    if path.is_dir() or path.suffix != ".json":
        path = path / CALIBRATION_FILE
    write_json_atomic(path, calibration)
    return path


def load_calibration(path: str | os.PathLike) -> dict:
    """Read a calibration written by `medicraft review-report --calibrate` (a file or its folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / CALIBRATION_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No anatomy calibration at {path}; make one with `medicraft review-report --calibrate`.")
    try:
        calibration = json.loads(path.read_text(encoding="utf-8"))
        threshold = float(calibration["threshold"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path} is not an anatomy calibration (need a numeric 'threshold'): {err}") from err
    if not 0.0 <= threshold <= 1.0 + 1e-6:
        raise ValueError(f"{path}: threshold {threshold} is outside the anatomy score range [0, 1].")
    return calibration
