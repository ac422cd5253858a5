"""A review round's numbers: correctness per class and model version, the visual Turing
test, agreement of the automatic anatomy check with the experts, and between experts.

`review_report(ratings, out_dir)` writes `report.json`, `report.md` and PNG plots. Every
number is computed from the ratings dataset (`medicraft_hf.review.store.RATING_FEATURES`);
rates come with 95% Wilson score intervals, agreements with Cohen's (pairwise) and
Fleiss' (three or more reviewers) kappa.
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from medicraft_hf.io import write_json_atomic, write_text_atomic
from medicraft_hf.review.store import load_ratings
from medicraft_hf.review.verdicts import FAILURES, VERDICTS, origin_of_source

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (sensible for small n and rates near 0 or 1)."""
    if n == 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, center - half)  # exact ends, no rounding past p
    high = 1.0 if successes == n else min(1.0, center + half)
    return (low, high)


def _rate(successes: int, n: int) -> dict:
    successes, n = int(successes), int(n)  # plain ints (not numpy), so the JSON stays plain
    ci = wilson_interval(successes, n)
    return {"n": int(n), "successes": int(successes), "rate": successes / n if n else None,
            "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None}


def cohen_kappa(a, b, labels=None) -> float | None:
    """Cohen's kappa of two raters; None when undefined (no items), 1.0 when both agree on one label."""
    a, b = list(a), list(b)
    if not a:
        return None
    labels = list(labels) if labels is not None else sorted(set(a) | set(b))
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)))
    for x, y in zip(a, b):
        table[index[x], index[y]] += 1
    n = table.sum()
    observed = np.trace(table) / n
    expected = float((table.sum(0) * table.sum(1)).sum() / (n * n))
    if expected == 1.0:  # both raters used one and the same label throughout
        return 1.0 if observed == 1.0 else None
    return float((observed - expected) / (1 - expected))


def fleiss_kappa(counts) -> float | None:
    """Fleiss' kappa from an items x categories table of rating counts (same raters per item)."""
    counts = np.asarray(counts, dtype=float)
    if counts.size == 0:
        return None
    m = counts.sum(1)
    if not np.all(m == m[0]) or m[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings per item.")
    m = m[0]
    p_item = ((counts * counts).sum(1) - m) / (m * (m - 1))
    p_cat = counts.sum(0) / counts.sum()
    expected = float((p_cat * p_cat).sum())
    if expected == 1.0:
        return 1.0
    return float((p_item.mean() - expected) / (1 - expected))


def model_version(row) -> str:
    """How the report names where an image came from: `model_id@revision`, or real/phantom."""
    model_id, revision, source = (None if pd.isna(row[c]) else row[c] for c in ("model_id", "model_revision", "source"))
    if source == "real":
        return "real"
    if model_id is None and revision is None:
        return source or "unknown"
    return f"{model_id}@{revision or 'unknown'}"


def _frame(ratings) -> pd.DataFrame:
    df = load_ratings(ratings).to_pandas() if not isinstance(ratings, pd.DataFrame) else ratings.copy()
    if df.empty:
        raise ValueError("The ratings are empty: nothing to report. Rate some scans with `medicraft review` first.")
    df["blinded"] = df["blinded"].astype("boolean").fillna(False).astype(bool)
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
        rows.append({"model_version": version, "label": "all", **_rate(group["correct"].sum(), len(group))})
        for label, sub in group.groupby("label", sort=True):
            rows.append({"model_version": version, "label": label, **_rate(sub["correct"].sum(), len(sub))})
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
    blind = df[df["blinded"] & df["origin_guess"].notna()]
    if blind.empty:
        return {}
    hit = blind["origin_guess"] == blind["source"].map(origin_of_source)
    result = {"overall": _rate(hit.sum(), len(blind)), "per_reviewer": {}}
    for reviewer, idx in blind.groupby("reviewer").groups.items():
        result["per_reviewer"][reviewer] = _rate(hit[idx].sum(), len(idx))
    return result


def auto_agreement(df: pd.DataFrame) -> dict:
    """Automatic anatomy check vs experts: kappa, confusion matrix, per-failure 2x2 counts.

    Each rating is one pair (expert verdict, automatic verdict on the same image).
    """
    pairs = df[df["auto_verdict"].notna()]
    if pairs.empty:
        return {}
    expert, auto = pairs["verdict"].tolist(), pairs["auto_verdict"].tolist()
    matrix = {e: {a: int(((pairs["verdict"] == e) & (pairs["auto_verdict"] == a)).sum()) for a in VERDICTS}
              for e in VERDICTS}
    per_failure = {}
    for failure in FAILURES:
        e, a = pairs["verdict"] == failure, pairs["auto_verdict"] == failure
        tp, fp, fn = int((e & a).sum()), int((~e & a).sum()), int((e & ~a).sum())
        per_failure[failure] = {"tp": tp, "fp": fp, "fn": fn, "tn": int(len(pairs) - tp - fp - fn),
                                "recall": tp / (tp + fn) if tp + fn else None,
                                "precision": tp / (tp + fp) if tp + fp else None}
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
        counts = [[int((row == v).sum()) for v in VERDICTS] for _, row in full.iterrows()]
        result["fleiss"] = {"n": len(full), "kappa": fleiss_kappa(counts) if counts else None}
    return result


def latest_round(df: pd.DataFrame) -> dict:
    """The numbers a card quotes: the most recent round's synthetic correctness."""
    last = df.groupby("round")["created_at"].max().sort_values().index[-1]
    rnd = df[df["round"] == last]
    synthetic = rnd[rnd["source"] != "real"]
    rate = _rate(synthetic["correct"].sum(), len(synthetic))
    blind = rnd[rnd["blinded"] & rnd["origin_guess"].notna()]
    hits = blind["origin_guess"] == blind["source"].map(origin_of_source)
    return {
        "round": last,
        "date": str(rnd["created_at"].max())[:10],
        "reviewers": int(rnd["reviewer"].nunique()),
        "n_ratings": len(rnd),
        "n_rated_synthetic": len(synthetic),
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


def review_report(ratings, out_dir: str | os.PathLike, *, calibrate: bool = False) -> dict:
    """Compute the report and write report.json, report.md and PNG plots into out_dir."""
    from medicraft_hf.review.calibrate import calibrate_from_ratings, write_calibration
    from medicraft_hf.review.card import review_card_section

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ratings = load_ratings(ratings) if not isinstance(ratings, pd.DataFrame) else ratings
    report = compute_report(ratings)
    if calibrate:
        report["calibration"] = calibrate_from_ratings(ratings)
        write_calibration(report["calibration"], out_dir / "calibration.json")
    report["plots"] = plot_report(report, out_dir)
    report["card_section"] = review_card_section(report)
    write_json_atomic(out_dir / "report.json", report)
    write_text_atomic(out_dir / "report.md", report_markdown(report))
    return report


def _pct(x) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _ci(r: dict) -> str:
    return "n/a" if r["rate"] is None else f"{r['rate']:.1%} [{r['ci_low']:.1%}, {r['ci_high']:.1%}]"


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def report_markdown(report: dict) -> str:
    lines = [
        "# Expert review report",
        "",
        f"{report['n_ratings']} ratings of {report['n_images']} images by {len(report['reviewers'])} "
        f"pseudonymous reviewer(s); rounds: {', '.join(report['rounds'])}.",
        "",
        "## Summary",
        "",
        report["card_section"],
        "## Anatomical correctness (95% Wilson CI)",
        "",
        "| model version | class | rated | correct | rate [95% CI] |",
        "|---|---|---:|---:|---|",
    ]
    lines += [f"| {r['model_version']} | {r['label']} | {r['n']} | {r['successes']} | {_ci(r)} |"
              for r in report["correctness"]]
    lines += ["", "## Verdicts", "", "| model version | " + " | ".join(VERDICTS) + " |",
              "|---|" + "---:|" * len(VERDICTS)]
    lines += [f"| {v} | " + " | ".join(str(c[x]) for x in VERDICTS) + " |" for v, c in report["verdict_counts"].items()]
    lines += ["", "## Reviewers", "", "| reviewer | ratings | judged correct | median seconds per scan |",
              "|---|---:|---|---:|"]
    lines += [f"| {who} | {r['n']} | {_pct(r['correct_rate'])} | "
              + ("n/a" if r["median_seconds"] is None else f"{r['median_seconds']:.1f}") + " |"
              for who, r in report["per_reviewer"].items()]
    turing = report["turing_test"]
    lines += ["", "## Visual Turing test (blinded: real or synthetic?)", ""]
    if turing:
        lines += ["50% is chance: the reviewer cannot tell generated scans from real ones.", "",
                  "| reviewer | answers | right | accuracy [95% CI] |", "|---|---:|---:|---|"]
        lines += [f"| {who} | {r['n']} | {r['successes']} | {_ci(r)} |" for who, r in turing["per_reviewer"].items()]
        lines += [f"| **all** | {turing['overall']['n']} | {turing['overall']['successes']} | {_ci(turing['overall'])} |"]
    else:
        lines.append("No blinded ratings in these rounds.")
    agreement = report["auto_agreement"]
    lines += ["", "## Automatic anatomy check vs experts", ""]
    if agreement:
        lines += [f"{agreement['n']} rated scans; exact agreement {_pct(agreement['accuracy'])}; Cohen's kappa "
                  f"{_num(agreement['kappa'])} over all verdicts, {_num(agreement['kappa_correct'])} on correct vs not.",
                  "", "Confusion matrix (rows: expert, columns: automatic check):", "",
                  "| expert \\ auto | " + " | ".join(VERDICTS) + " |", "|---|" + "---:|" * len(VERDICTS)]
        lines += [f"| {e} | " + " | ".join(str(row[a]) for a in VERDICTS) + " |"
                  for e, row in agreement["confusion_matrix"].items()]
        lines += ["", "| failure | expert & auto | auto only | expert only | recall | precision |",
                  "|---|---:|---:|---:|---|---|"]
        lines += [f"| {f} | {c['tp']} | {c['fp']} | {c['fn']} | {_pct(c['recall'])} | {_pct(c['precision'])} |"
                  for f, c in agreement["per_failure"].items()]
    else:
        lines.append("No ratings carry an automatic anatomy verdict.")
    if report.get("calibration"):
        c = report["calibration"]
        lines += ["", f"Calibrated threshold **{c['threshold']:.4f}** (keep a scan when score >= threshold): "
                  f"sensitivity {_pct(c['sensitivity'])}, specificity {_pct(c['specificity'])}, "
                  f"balanced accuracy {_pct(c['balanced_accuracy'])}; written to `calibration.json`."]
    inter = report["inter_reviewer"]
    lines += ["", "## Agreement between reviewers", ""]
    if inter:
        lines += ["| reviewers | shared images | agreement | kappa (all verdicts) | kappa (correct vs not) |",
                  "|---|---:|---|---|---|"]
        lines += [f"| {' / '.join(p['reviewers'])} | {p['n']} | {_pct(p['agreement'])} | {_num(p['kappa'])} | "
                  f"{_num(p['kappa_correct'])} |" for p in inter["pairwise"]]
        if "fleiss" in inter:
            lines += ["", f"Fleiss' kappa over the {inter['fleiss']['n']} images every reviewer rated: "
                      f"{_num(inter['fleiss']['kappa'])}."]
    else:
        lines.append("Only one reviewer so far.")
    if report["plots"]:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in report["plots"]]
    return "\n".join(lines) + "\n"


def plot_report(report: dict, out_dir: Path) -> list[str]:
    """PNG plots beside the report; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def save(fig, name):
        path = out_dir / name
        tmp = out_dir / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        plt.close(fig)
        os.replace(tmp, path)
        written.append(name)

    rows = [r for r in report["correctness"] if r["n"]]
    if rows:
        versions = sorted({r["model_version"] for r in rows})
        labels = ["all"] + sorted({r["label"] for r in rows} - {"all"})
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(labels) * len(versions)), 4))
        width = 0.8 / len(versions)
        for i, version in enumerate(versions):
            got = {r["label"]: r for r in rows if r["model_version"] == version}
            xs = [j + i * width for j, label in enumerate(labels) if label in got]
            rs = [got[label] for label in labels if label in got]
            rates = [r["rate"] for r in rs]
            err = [[r["rate"] - r["ci_low"] for r in rs], [r["ci_high"] - r["rate"] for r in rs]]
            ax.bar(xs, rates, width, yerr=err, capsize=3, label=version)
        ax.set_xticks([j + width * (len(versions) - 1) / 2 for j in range(len(labels))], labels)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("anatomically correct (95% CI)")
        ax.set_title("Expert-rated anatomical correctness")
        ax.legend(fontsize=8)
        save(fig, "correctness.png")

    turing = report["turing_test"]
    if turing:
        names = list(turing["per_reviewer"]) + ["all"]
        rs = list(turing["per_reviewer"].values()) + [turing["overall"]]
        fig, ax = plt.subplots(figsize=(max(4, 1.0 * len(names)), 3.5))
        ax.bar(names, [r["rate"] for r in rs],
               yerr=[[r["rate"] - r["ci_low"] for r in rs], [r["ci_high"] - r["rate"] for r in rs]], capsize=3)
        ax.axhline(0.5, color="gray", linestyle="--", label="chance")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("real-vs-synthetic accuracy")
        ax.set_title("Visual Turing test")
        ax.legend(fontsize=8)
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
        save(fig, "turing_test.png")

    agreement = report["auto_agreement"]
    if agreement:
        matrix = np.array([[agreement["confusion_matrix"][e][a] for a in VERDICTS] for e in VERDICTS])
        fig, ax = plt.subplots(figsize=(6, 5))
        ax.imshow(matrix, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center",
                    color="white" if count > matrix.max() / 2 else "black")
        ax.set_xticks(range(len(VERDICTS)), VERDICTS, rotation=35, ha="right")
        ax.set_yticks(range(len(VERDICTS)), VERDICTS)
        ax.set_xlabel("automatic anatomy check")
        ax.set_ylabel("expert")
        ax.set_title(f"Anatomy check vs experts (kappa {_num(agreement['kappa'])})")
        save(fig, "auto_vs_expert.png")
    return written
