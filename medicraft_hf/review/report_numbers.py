"""A review round's numbers, from the ratings dataset to one JSON-ready dict.

`compute_report(ratings)` gathers correctness per class and model version, verdict
counts, per-reviewer figures, the visual Turing test, the automatic anatomy check
against the experts and agreement between experts. The statistics themselves are
`review.stats`; this module decides what is counted together.

Real or synthetic is read only from each rating's `truth` and `model_version`, recorded
when the round was drawn (`review.session`), never guessed from the `source` column (the
phantom stands in for real scans but says `phantom`). Ratings without a recorded truth
(made before it was recorded) are counted as `unrecorded`: left out of the Turing test and
of the generated-scan figures, and the report says how many.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from medicraft_hf.review.stats import (
    cohen_kappa,
    confusion_counts,
    fleiss_kappa,
    one_vs_rest,
    proportion,
    rating_counts,
)
from medicraft_hf.review.store import load_ratings
from medicraft_hf.review.verdicts import FAILURES, VERDICTS

UNRECORDED = "unrecorded"


def model_version(row) -> str:
    """How the report names where an image came from: the version recorded at the draw
    (`model_id@revision`, or `real`), or `unrecorded` when the rating carries no truth."""
    truth, version = (None if pd.isna(row.get(c)) else row.get(c) for c in ("truth", "model_version"))
    if truth is None:
        return UNRECORDED
    return "real" if truth == "real" else (version or "unknown")


def _frame(ratings) -> pd.DataFrame:
    df = load_ratings(ratings).to_pandas() if not isinstance(ratings, pd.DataFrame) else ratings.copy()
    if df.empty:
        raise ValueError("The ratings are empty: nothing to report. Rate some scans with `medicraft review` first.")
    df["blinded"] = df["blinded"].astype("boolean").fillna(False).astype(bool)
    for column in ("truth", "model_version"):
        if column not in df:
            df[column] = None
    df["model_version"] = df.apply(model_version, axis=1)
    df["correct"] = df["verdict"] == "correct"
    # One image = one reference (round, image and its provenance); several reviewers may rate it.
    key_columns = [df[c].tolist() for c in ("round", "image_id", "model_id", "model_revision", "seed")]
    df["image_key"] = ["|".join(map(str, values)) for values in zip(*key_columns)]
    return df


def correctness_rates(df: pd.DataFrame) -> list[dict]:
    """Anatomical-correctness rate per model version and class ('all' = every class)."""
    rows = []
    for version, group in df.groupby("model_version", sort=True):
        rows.append({"model_version": version, "label": "all", **proportion(group["correct"].sum(), len(group))})
        for label, sub in group.groupby("label", sort=True):
            rows.append({"model_version": version, "label": label, **proportion(sub["correct"].sum(), len(sub))})
    return rows


def failure_counts(df: pd.DataFrame) -> dict:
    """How often each verdict was given, per model version."""
    return {version: {v: int((g["verdict"] == v).sum()) for v in VERDICTS} for version, g in df.groupby("model_version")}


def reviewer_stats(df: pd.DataFrame) -> dict:
    """Per reviewer: ratings made, share judged correct, median seconds per verdict."""
    stats = {}
    for reviewer, g in df.groupby("reviewer", sort=True):
        seconds = g["seconds"].dropna()
        stats[reviewer] = {"n": len(g), "correct_rate": float(g["correct"].mean()),
                           "median_seconds": float(seconds.median()) if len(seconds) else None}
    return stats


def turing_test(df: pd.DataFrame) -> dict:
    """Accuracy of the blinded 'real or synthetic?' answers, per reviewer and overall."""
    answered = df[df["blinded"] & df["origin_guess"].notna()]
    blind = answered[answered["truth"].notna()]
    if blind.empty:
        return {"n_unrecorded": len(answered)} if len(answered) else {}
    hit = blind["origin_guess"] == blind["truth"]
    result = {"overall": proportion(hit.sum(), len(blind)), "per_reviewer": {}, "per_truth": {},
              "n_unrecorded": len(answered) - len(blind)}
    for reviewer, idx in blind.groupby("reviewer").groups.items():
        result["per_reviewer"][reviewer] = proportion(hit[idx].sum(), len(idx))
    for truth, idx in blind.groupby("truth").groups.items():  # real scans called real, synthetic called synthetic
        result["per_truth"][truth] = proportion(hit[idx].sum(), len(idx))
    return result


def auto_agreement(df: pd.DataFrame) -> dict:
    """Automatic anatomy check vs experts: kappa, confusion matrix, per-failure 2x2 counts.

    Each rating is one pair (expert verdict, automatic verdict on the same image).
    """
    pairs = df[df["auto_verdict"].notna()]
    if pairs.empty:
        return {}
    expert, auto = pairs["verdict"].tolist(), pairs["auto_verdict"].tolist()
    cm = confusion_counts(expert, auto, VERDICTS)
    matrix = {e: {a: int(cm[i, j]) for j, a in enumerate(VERDICTS)} for i, e in enumerate(VERDICTS)}
    per_failure = {failure: one_vs_rest(cm, VERDICTS.index(failure)) for failure in FAILURES}
    return {
        "n": len(pairs),
        "accuracy": float(np.mean([x == y for x, y in zip(expert, auto)])),
        "kappa": cohen_kappa(expert, auto, VERDICTS),
        "kappa_correct": cohen_kappa([x == "correct" for x in expert], [y == "correct" for y in auto], [True, False]),
        "confusion_matrix": matrix,  # rows: expert verdict, columns: automatic verdict
        "per_failure": per_failure,
    }


def inter_reviewer(df: pd.DataFrame) -> dict:
    """Agreement between reviewers on the images they both rated (and Fleiss' for 3+)."""
    reviewers = sorted(df["reviewer"].unique())
    if len(reviewers) < 2:
        return {}
    table = df.pivot_table(index="image_key", columns="reviewer", values="verdict", aggfunc="first")
    pairwise = []
    for a, b in itertools.combinations(reviewers, 2):
        both = table[[a, b]].dropna()
        if len(both):
            pairwise.append({
                "reviewers": [a, b], "n": len(both),
                "agreement": float((both[a] == both[b]).mean()),
                "kappa": cohen_kappa(both[a], both[b], VERDICTS),
                "kappa_correct": cohen_kappa(both[a] == "correct", both[b] == "correct", [True, False]),
            })
    result = {"reviewers": len(reviewers), "pairwise": pairwise}
    if len(reviewers) > 2:
        full = table.dropna()  # images every reviewer rated
        counts = rating_counts(full.to_numpy().tolist(), VERDICTS)
        result["fleiss"] = {"n": len(full), "kappa": fleiss_kappa(counts) if len(counts) else None}
    return result


def latest_round(df: pd.DataFrame) -> dict:
    """The numbers a card quotes: the most recent round's synthetic correctness."""
    last = df.groupby("round")["created_at"].max().sort_values().index[-1]
    rnd = df[df["round"] == last]
    synthetic = rnd[rnd["truth"] == "synthetic"]
    rate = proportion(synthetic["correct"].sum(), len(synthetic))
    blind = rnd[rnd["blinded"] & rnd["origin_guess"].notna() & rnd["truth"].notna()]
    hits = blind["origin_guess"] == blind["truth"]
    return {
        "round": last,
        "date": str(rnd["created_at"].max())[:10],
        "reviewers": int(rnd["reviewer"].nunique()),
        "n_ratings": len(rnd),
        "n_rated_synthetic": len(synthetic),
        "n_correct_synthetic": rate["successes"],
        "n_unrecorded": int(rnd["truth"].isna().sum()),
        "n_turing": len(blind),
        "n_turing_right": int(hits.sum()),
        "correct_rate": rate["rate"],
        "correct_ci": [rate["ci_low"], rate["ci_high"]],
        "model_versions": sorted(synthetic["model_version"].unique().tolist()),
        "turing_accuracy": float(hits.mean()) if len(blind) else None,
    }


def compute_report(ratings) -> dict:
    """Every number of the round's summary, as a JSON-ready dict."""
    df = _frame(ratings)
    turing = turing_test(df)
    return {
        "n_ratings": len(df),
        "n_images": int(df["image_key"].nunique()),
        "reviewers": sorted(df["reviewer"].unique().tolist()),
        "rounds": sorted(df["round"].unique().tolist()),
        "correctness": correctness_rates(df),
        "verdict_counts": failure_counts(df),
        "per_reviewer": reviewer_stats(df),
        "turing_test": turing,
        "auto_agreement": auto_agreement(df),
        "inter_reviewer": inter_reviewer(df),
        "latest_round": latest_round(df),
    }
