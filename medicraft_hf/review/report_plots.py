"""A review round's PNG plots: correctness with its intervals, the Turing test, check vs experts.

`plot_report(report, out_dir)` draws from `compute_report`'s dict and writes each PNG
through `medicraft_hf.io.atomic_path`, so a reader never sees half a file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medicraft_hf.io import atomic_path
from medicraft_hf.review.verdicts import VERDICTS


def plot_report(report: dict, out_dir: str | Path) -> list[str]:
    """PNG plots beside the report; returns their file names (plots without data are left out)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    written = []
    for name, draw in (("correctness.png", _correctness), ("turing_test.png", _turing),
                       ("auto_vs_expert.png", _auto_vs_expert)):
        fig = draw(plt, report)
        if fig is None:
            continue
        try:
            with atomic_path(Path(out_dir) / name) as tmp:  # keeps the .png name: savefig reads the format from it
                fig.savefig(tmp, dpi=110, bbox_inches="tight")
        finally:
            plt.close(fig)
        written.append(name)
    return written


def _error_bars(rs: list[dict]) -> list[list[float]]:
    return [[r["rate"] - r["ci_low"] for r in rs], [r["ci_high"] - r["rate"] for r in rs]]


def _correctness(plt, report: dict):
    rows = [r for r in report["correctness"] if r["n"]]
    if not rows:
        return None
    versions = sorted({r["model_version"] for r in rows})
    labels = ["all"] + sorted({r["label"] for r in rows} - {"all"})
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(labels) * len(versions)), 4))
    width = 0.8 / len(versions)
    for i, version in enumerate(versions):  # one group of bars per class, one bar per model version
        got = {r["label"]: r for r in rows if r["model_version"] == version}
        xs = [j + i * width for j, label in enumerate(labels) if label in got]
        rs = [got[label] for label in labels if label in got]
        ax.bar(xs, [r["rate"] for r in rs], width, yerr=_error_bars(rs), capsize=3, label=version)
    ax.set_xticks([j + width * (len(versions) - 1) / 2 for j in range(len(labels))], labels)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("anatomically correct (95% CI)")
    ax.set_title("Expert-rated anatomical correctness")
    ax.legend(fontsize=8)
    return fig


def _turing(plt, report: dict):
    turing = report["turing_test"]
    if "overall" not in turing:  # no blinded answers with a recorded truth
        return None
    names = list(turing["per_reviewer"]) + ["all"]
    rs = list(turing["per_reviewer"].values()) + [turing["overall"]]
    fig, ax = plt.subplots(figsize=(max(4, 1.0 * len(names)), 3.5))
    ax.bar(names, [r["rate"] for r in rs], yerr=_error_bars(rs), capsize=3)
    ax.axhline(0.5, color="gray", linestyle="--", label="chance")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("real-vs-synthetic accuracy")
    ax.set_title("Visual Turing test")
    ax.legend(fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    return fig


def _auto_vs_expert(plt, report: dict):
    agreement = report["auto_agreement"]
    if not agreement:
        return None
    matrix = np.array([[agreement["confusion_matrix"][e][a] for a in VERDICTS] for e in VERDICTS])
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(VERDICTS)), VERDICTS, rotation=35, ha="right")
    ax.set_yticks(range(len(VERDICTS)), VERDICTS)
    ax.set_xlabel("automatic anatomy check")
    ax.set_ylabel("expert")
    kappa = agreement["kappa"]
    ax.set_title(f"Anatomy check vs experts (kappa {'n/a' if kappa is None else f'{kappa:.3f}'})")
    return fig
