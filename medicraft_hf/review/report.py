"""A review round's numbers: correctness per class and model version, the visual Turing
test, agreement of the automatic anatomy check with the experts, and between experts.

`review_report(ratings, out_dir)` writes `report.json`, `report.md` and PNG plots. Every
number is computed from the ratings dataset (`medicraft_hf.review.store.RATING_FEATURES`);
rates come with 95% Wilson score intervals, agreements with Cohen's (pairwise) and
Fleiss' (three or more reviewers) kappa.

The work is split by job: `review.stats` (the statistics, over statsmodels and
scikit-learn), `review.report_numbers` (what is counted together), `review.report_markdown`
and `review.report_plots`. Their public names are re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from medicraft_hf.io import write_json_atomic, write_text_atomic
from medicraft_hf.review.report_markdown import report_markdown
from medicraft_hf.review.report_numbers import (
    auto_agreement,
    compute_report,
    correctness_rates,
    failure_counts,
    inter_reviewer,
    latest_round,
    model_version,
    reviewer_stats,
    turing_test,
)
from medicraft_hf.review.report_plots import plot_report
from medicraft_hf.review.stats import Z95, cohen_kappa, fleiss_kappa, wilson_interval
from medicraft_hf.review.store import load_ratings

__all__ = [
    "Z95", "auto_agreement", "cohen_kappa", "compute_report", "correctness_rates", "failure_counts", "fleiss_kappa",
    "inter_reviewer", "latest_round", "model_version", "plot_report", "report_markdown", "review_report",
    "reviewer_stats", "turing_test", "wilson_interval",
]


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """Make the report folder, or say (as `ArgumentError('out_dir')`) why it cannot be written."""
    import tempfile

    from medicraft_hf.errors import ArgumentError

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as err:
        raise ArgumentError("out_dir", f"Cannot write the report into {{argument}} {out_dir}: "
                                       f"{err.strerror or err}; pass a folder you can write.") from err
    return out_dir


def review_report(ratings, out_dir: str | os.PathLike, *, calibrate: bool = False,
                  skipped: list | None = None) -> dict:
    """Compute the report and write report.json, report.md and PNG plots into out_dir.

    `skipped`: (file, why) of store files that are not ratings (from `load_ratings(...,
    problems=)`); the report lists them. Files skipped while reading `ratings` here are added.
    """
    from medicraft_hf.review.calibrate import calibrate_from_ratings, write_calibration
    from medicraft_hf.review.card import review_card_section

    out_dir = check_out_dir(out_dir)  # before any work: a read-only folder is said at once
    skipped = list(skipped or [])
    ratings = load_ratings(ratings, problems=skipped) if not isinstance(ratings, pd.DataFrame) else ratings
    report = compute_report(ratings)
    report["skipped_files"] = [{"file": str(f), "why": why} for f, why in skipped]
    if calibrate:
        report["calibration"] = calibrate_from_ratings(ratings)
        write_calibration(report["calibration"], out_dir / "calibration.json")
    report["plots"] = plot_report(report, out_dir)
    report["card_section"] = review_card_section(report)
    write_json_atomic(out_dir / "report.json", report)
    write_text_atomic(out_dir / "report.md", report_markdown(report))
    return report
