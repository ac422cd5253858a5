"""Calibrate the automatic anatomy check on expert verdicts.

The anatomy check gives each scan a plausibility score in [0, 1]; generation keeps a scan
when `score >= threshold`. The threshold chosen here is the cut that best separates what
experts called anatomically correct from what they did not (maximal Youden's J, i.e.
balanced accuracy), written to `calibration.json` for `medicraft generate
--anatomy-calibration`.

A threshold is only as good as the ratings behind it. `calibration_warnings` says when it
is not informative: too few expert verdicts of either kind (`MIN_PER_VERDICT`), a balanced
accuracy near chance (`MIN_BALANCED_ACCURACY`), or a best cut that random verdicts would
match as often as not (a permutation test of the maximal balanced accuracy, p >= 0.05).
The warnings are written into the file; the card quotes them and `medicraft generate`
refuses such a file.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from medicraft_hf.io import write_json_atomic

CALIBRATION_FILE = "calibration.json"
MIN_PER_VERDICT = 10  # expert verdicts of each kind (correct, faulty) a threshold needs
MIN_BALANCED_ACCURACY = 0.6  # below: near chance (0.5)
MAX_P_VALUE = 0.05
PERMUTATIONS = 2000


def _cut_balanced_accuracy(sorted_correct: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Balanced accuracy of rejecting the first k scans (by score) for each k in `cuts`;
    `sorted_correct` is (..., n) expert verdicts in ascending score order."""
    n_pos = sorted_correct.sum(-1, keepdims=True)
    n_neg = sorted_correct.shape[-1] - n_pos
    rejected_pos = np.concatenate([np.zeros_like(n_pos), np.cumsum(sorted_correct, -1)], -1)[..., cuts]
    sensitivity = (n_pos - rejected_pos) / n_pos
    specificity = (cuts - rejected_pos) / n_neg
    return (sensitivity + specificity) / 2


def permutation_p_value(scores, expert_correct, permutations: int = PERMUTATIONS, seed: int = 0) -> float:
    """How often verdicts shuffled at random reach the best balanced accuracy of the real ones.

    The best cut is chosen after looking, so its balanced accuracy is optimistic; comparing
    it with the best cut on shuffled verdicts (same scores, same counts) corrects for that.
    """
    order = np.argsort(scores, kind="stable")
    s = np.asarray(scores, dtype=float)[order]
    c = np.asarray(expert_correct, dtype=bool)[order].astype(float)
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(s) > 0) + 1, [len(s)]])
    observed = _cut_balanced_accuracy(c, cuts).max()
    rng = np.random.default_rng(seed)
    shuffled = np.stack([rng.permutation(c) for _ in range(permutations)])
    best = _cut_balanced_accuracy(shuffled, cuts).max(-1)
    return float((1 + np.sum(best >= observed - 1e-12)) / (permutations + 1))


def calibration_warnings(calibration: dict) -> list[str]:
    """Why a calibration is not informative (empty when it is), from the numbers the file
    carries; works on older files too. A file with none of them (a hand-written threshold)
    gets none: see `calibration_evidence`."""
    warnings = []
    n_pos, n_neg = calibration.get("n_expert_correct"), calibration.get("n_expert_faulty")
    if n_pos is not None and n_neg is not None and min(n_pos, n_neg) < MIN_PER_VERDICT:
        warnings.append(f"too few ratings per verdict: {n_pos} correct and {n_neg} faulty, "
                        f"at least {MIN_PER_VERDICT} of each are needed")
    ba = calibration.get("balanced_accuracy")
    if ba is not None and ba < MIN_BALANCED_ACCURACY:
        warnings.append(f"balanced accuracy {ba:.1%} is near chance (50%; needs at least {MIN_BALANCED_ACCURACY:.0%})")
    p = calibration.get("p_value")
    if p is not None and p >= MAX_P_VALUE:
        warnings.append(f"random verdicts do as well (permutation p = {p:.2f})")
    return warnings


def calibration_evidence(calibration: dict) -> bool:
    """Whether the file carries the numbers that say how informative it is."""
    return all(calibration.get(k) is not None for k in ("n_expert_correct", "n_expert_faulty", "balanced_accuracy"))


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
    result = {**best, "criterion": "youden", "pass_rule": "score >= threshold", "n_ratings": int(scores.size),
              "n_expert_correct": n_pos, "n_expert_faulty": n_neg,
              "p_value": permutation_p_value(scores, correct)}
    result["warnings"] = calibration_warnings(result)
    result["informative"] = not result["warnings"]
    return result


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
