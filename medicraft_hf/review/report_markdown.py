"""A review round's report as markdown: `report_markdown(report)` renders `compute_report`'s dict.

One function per section; every figure comes from the dict, nothing here is computed
but formatting.
"""

from __future__ import annotations

from pathlib import Path

from medicraft_hf.review.verdicts import VERDICTS


def _pct(x) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _ci(r: dict) -> str:
    return "n/a" if r["rate"] is None else f"{r['rate']:.1%} [{r['ci_low']:.1%}, {r['ci_high']:.1%}]"


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _verdict_table_head(first: str) -> list[str]:
    return [f"| {first} | " + " | ".join(VERDICTS) + " |", "|---|" + "---:|" * len(VERDICTS)]


def report_markdown(report: dict) -> str:
    """report.md: summary, correctness, verdicts, reviewers, Turing test, anatomy check, agreement, plots."""
    lines = [
        "# Expert review report",
        "",
        f"{report['n_ratings']} ratings of {report['n_images']} images by {len(report['reviewers'])} "
        f"pseudonymous reviewer(s); rounds: {', '.join(report['rounds'])}.",
        "",
        "## Summary",
        "",
        report["card_section"],
    ]
    lines += _correctness(report) + _reviewers(report) + _turing(report["turing_test"])
    lines += _auto_agreement(report["auto_agreement"], report.get("calibration"))
    lines += _inter_reviewer(report["inter_reviewer"])
    if report.get("skipped_files"):
        lines += ["", "## Skipped files", "", "These files in the ratings stores are not ratings; they were left out:", ""]
        lines += [f"- `{s['file']}`: {s['why']}" for s in report["skipped_files"]]
    if report["plots"]:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in report["plots"]]
    return "\n".join(lines) + "\n"


def _correctness(report: dict) -> list[str]:
    lines = ["## Anatomical correctness (95% Wilson CI)", "",
             "| model version | class | rated | correct | rate [95% CI] |", "|---|---|---:|---:|---|"]
    lines += [f"| {r['model_version']} | {r['label']} | {r['n']} | {r['successes']} | {_ci(r)} |"
              for r in report["correctness"]]
    lines += ["", "## Verdicts", ""] + _verdict_table_head("model version")
    lines += [f"| {v} | " + " | ".join(str(c[x]) for x in VERDICTS) + " |" for v, c in report["verdict_counts"].items()]
    return lines


def _reviewers(report: dict) -> list[str]:
    lines = ["", "## Reviewers", "", "| reviewer | ratings | judged correct | median seconds per scan |",
             "|---|---:|---|---:|"]
    lines += [f"| {who} | {r['n']} | {_pct(r['correct_rate'])} | "
              + ("n/a" if r["median_seconds"] is None else f"{r['median_seconds']:.1f}") + " |"
              for who, r in report["per_reviewer"].items()]
    return lines


def _turing(turing: dict) -> list[str]:
    lines = ["", "## Visual Turing test (blinded: real or synthetic?)", ""]
    if "overall" not in turing:
        return lines + (["No blinded ratings in these rounds."] if not turing else
                        [f"{turing['n_unrecorded']} blinded answer(s), but none on a rating with a recorded truth."])
    lines += ["50% is chance: the reviewer cannot tell generated scans from real ones. The truth of each scan "
              "is the set it was drawn from, recorded when the round was drawn.", "",
              "| reviewer | answers | right | accuracy [95% CI] |", "|---|---:|---:|---|"]
    lines += [f"| {who} | {r['n']} | {r['successes']} | {_ci(r)} |" for who, r in turing["per_reviewer"].items()]
    overall = turing["overall"]
    lines += [f"| **all** | {overall['n']} | {overall['successes']} | {_ci(overall)} |"]
    lines += [f"| *{truth} scans* | {r['n']} | {r['successes']} | {_ci(r)} |" for truth, r in turing["per_truth"].items()]
    if turing.get("n_unrecorded"):
        lines += ["", f"{turing['n_unrecorded']} answer(s) on ratings without a recorded truth are left out."]
    return lines


def _auto_agreement(agreement: dict, calibration: dict | None) -> list[str]:
    lines = ["", "## Automatic anatomy check vs experts", ""]
    if agreement:
        lines += [f"{agreement['n']} rated scans; exact agreement {_pct(agreement['accuracy'])}; Cohen's kappa "
                  f"{_num(agreement['kappa'])} over all verdicts, {_num(agreement['kappa_correct'])} on correct vs not.",
                  "", "Confusion matrix (rows: expert, columns: automatic check):", ""]
        lines += _verdict_table_head("expert \\ auto")
        lines += [f"| {e} | " + " | ".join(str(row[a]) for a in VERDICTS) + " |"
                  for e, row in agreement["confusion_matrix"].items()]
        lines += ["", "| failure | expert & auto | auto only | expert only | recall | precision |",
                  "|---|---:|---:|---:|---|---|"]
        lines += [f"| {f} | {c['tp']} | {c['fp']} | {c['fn']} | {_pct(c['recall'])} | {_pct(c['precision'])} |"
                  for f, c in agreement["per_failure"].items()]
    else:
        lines.append("No ratings carry an automatic anatomy verdict.")
    if calibration:
        c = calibration
        lines += ["", f"Calibrated threshold **{c['threshold']:.4f}** (keep a scan when score >= threshold): "
                  f"sensitivity {_pct(c['sensitivity'])}, specificity {_pct(c['specificity'])}, "
                  f"balanced accuracy {_pct(c['balanced_accuracy'])}"
                  + (f", permutation p = {c['p_value']:.3f}" if c.get("p_value") is not None else "")
                  + "; written to `calibration.json`."]
        if c.get("warnings"):
            lines += ["", "**Warning: this calibration is not informative**: " + "; ".join(c["warnings"])
                      + ". `medicraft generate --anatomy-calibration` refuses it."]
    return lines


def _inter_reviewer(inter: dict) -> list[str]:
    lines = ["", "## Agreement between reviewers", ""]
    if not inter:
        return lines + ["Only one reviewer so far."]
    lines += ["| reviewers | shared images | agreement | kappa (all verdicts) | kappa (correct vs not) |",
              "|---|---:|---|---|---|"]
    lines += [f"| {' / '.join(p['reviewers'])} | {p['n']} | {_pct(p['agreement'])} | {_num(p['kappa'])} | "
              f"{_num(p['kappa_correct'])} |" for p in inter["pairwise"]]
    if "fleiss" in inter:
        lines += ["", f"Fleiss' kappa over the {inter['fleiss']['n']} images every reviewer rated: "
                  f"{_num(inter['fleiss']['kappa'])}."]
    return lines
