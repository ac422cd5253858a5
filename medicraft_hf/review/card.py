"""Quote the latest review round in model and dataset cards.

`review_card_section(report)` is the Markdown body of an "Expert review" section: the
latest round's correctness rate with its CI, the number of reviewers, the date and the
model version(s). Pass it to `model_card(expert_review=...)` or
`dataset_card(extra_sections={"Expert review": ...})`, or let `update_card_section`
rewrite that section of an existing README.md (a saved pipeline or dataset folder) in place.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from medicraft_hf.io import write_text_atomic

SECTION_TITLE = "Expert review"


def review_card_section(report: dict) -> str:
    """Markdown body (no heading) quoting the latest review round of a report."""
    latest = report.get("latest_round")
    if not latest:
        return "No expert review round has been recorded yet.\n"
    rate = latest.get("correct_rate")
    n_correct = latest.get("n_correct_synthetic")
    counts = f"{n_correct} of {latest['n_rated_synthetic']}; " if n_correct is not None else ""
    rate_text = (
        f"**{rate:.0%}** of {latest['n_rated_synthetic']} generated scans anatomically correct "
        f"({counts}95% CI {latest['correct_ci'][0]:.0%}-{latest['correct_ci'][1]:.0%})"
        if rate is not None
        else "no generated scans rated"
    )
    versions = ", ".join(f"`{v}`" for v in latest["model_versions"]) or "none"
    lines = [
        f"Latest round **{latest['round']}** ({latest['date']}): {rate_text}, judged by "
        f"{latest['reviewers']} pseudonymous reviewer(s); model version(s): {versions}."
    ]
    if latest.get("turing_accuracy") is not None:
        right = (f" ({latest['n_turing_right']} of {latest['n_turing']} answers)"
                 if latest.get("n_turing") is not None else "")
        lines.append(f"Blinded real-vs-synthetic accuracy: {latest['turing_accuracy']:.0%}{right} "
                     "(50% = indistinguishable).")
    if latest.get("n_unrecorded"):
        lines.append(f"{latest['n_unrecorded']} rating(s) of this round carry no recorded truth (real or "
                     "generated) and are left out of these figures.")
    agreement = report.get("auto_agreement") or {}
    if agreement.get("kappa_correct") is not None:
        lines.append("Agreement of the automatic anatomy check with the experts (correct vs not): "
                     f"Cohen's kappa {agreement['kappa_correct']:.2f}.")
    if report.get("calibration"):
        calibration = report["calibration"]
        warnings = calibration.get("warnings") or []
        if warnings:
            lines.append(f"Anatomy-check threshold calibrated on these ratings: {calibration['threshold']:.3f}. "
                         f"**Warning: this calibration is not informative** ({'; '.join(warnings)}); "
                         "do not filter generation with it.")
        else:
            lines.append(f"Anatomy-check threshold calibrated on these ratings: {calibration['threshold']:.3f} "
                         "(`medicraft generate --anatomy-calibration`).")
    return "\n".join(lines) + "\n"


def update_card_section(readme: str | os.PathLike, body: str, title: str = SECTION_TITLE) -> Path:
    """Replace (or append) the `## <title>` section of a card's README.md, atomically.

    `readme` is the README.md or the folder holding it (a saved pipeline or dataset).
    """
    path = Path(readme)
    if path.is_dir():
        path = path / "README.md"
    if not path.is_file():
        raise FileNotFoundError(f"No card at {path}; pass a saved model or dataset folder with a README.md.")
    text = path.read_text(encoding="utf-8")
    section = f"## {title}\n\n{body.strip()}\n"
    # The section runs from its heading to the next level-1/2 heading or the end.
    pattern = re.compile(rf"^## {re.escape(title)}[ \t]*\n.*?(?=^#{{1,2}} |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    write_text_atomic(path, text)
    return path
