"""Summarize expert review rounds: correctness per class and model version (95% Wilson
CIs), the visual Turing test per reviewer, agreement of the automatic anatomy check with
the experts and between experts (Cohen's / Fleiss' kappa). Writes report.md, report.json,
PNG plots and card_section.md (the paragraph model and dataset cards quote, written into
their README.md with --update-card); with
--calibrate also calibration.json, the anatomy-score threshold that
`medicraft generate --anatomy-calibration` applies.
"""

from __future__ import annotations

# Library argument names -> this command's flags (errors are said in the CLI's words).
FLAGS = {"out_dir": "--out"}

HELP = "report on expert ratings (rates with CIs, Turing test, kappas, plots); calibrate the anatomy check"


def add_arguments(parser) -> None:
    parser.add_argument("--ratings", action="append", required=True,
                        help="ratings folder, saved ratings dataset or Hub dataset id; repeat to merge several")
    parser.add_argument("--out", required=True, help="report folder (created)")
    parser.add_argument("--calibrate", action="store_true", help="also choose the anatomy-score threshold (calibration.json)")
    parser.add_argument("--update-card", action="append", default=[], metavar="FOLDER",
                        help="rewrite the 'Expert review' section of this saved model or dataset folder's README.md "
                             "(repeatable; push it afterwards with `medicraft push`)")
    parser.add_argument("--push-ratings", default=None, metavar="REPO_ID",
                        help="push the merged ratings to this Hub dataset repo")
    parser.add_argument("--public", action="store_true", help="make the pushed ratings repo public (default: private)")


def run(args) -> int:
    import sys
    from pathlib import Path

    from medicraft_hf.io import write_text_atomic
    from medicraft_hf.review.card import update_card_section
    from medicraft_hf.review.report import check_out_dir, review_report
    from medicraft_hf.review.store import merge_ratings, push_ratings

    check_out_dir(args.out)  # a folder that cannot be written is said before any work
    skipped = []
    ratings = merge_ratings(args.ratings, problems=skipped)
    for file, why in skipped:
        print(f"skipped {file}: not a rating ({why})", file=sys.stderr)
    report = review_report(ratings, args.out, calibrate=args.calibrate, skipped=skipped)
    write_text_atomic(Path(args.out) / "card_section.md", report["card_section"])
    latest = report["latest_round"]
    print(f"{report['n_ratings']} ratings of {report['n_images']} images by {len(report['reviewers'])} reviewer(s); "
          f"latest round {latest['round']}: correct rate "
          + ("n/a" if latest["correct_rate"] is None else f"{latest['correct_rate']:.1%}"))
    if "calibration" in report:
        print(f"anatomy threshold {report['calibration']['threshold']:.4f} -> {Path(args.out) / 'calibration.json'}")
        for warning in report["calibration"]["warnings"]:
            print(f"warning: the calibration is not informative: {warning}", file=sys.stderr)
    print(f"report: {Path(args.out) / 'report.md'}")
    for folder in args.update_card:
        print(f"updated the expert-review section of {update_card_section(folder, report['card_section'])}")
    if args.push_ratings:
        commit = push_ratings(ratings, args.push_ratings, private=not args.public)
        print(f"pushed {len(ratings)} ratings to {args.push_ratings} "
              f"({'public' if args.public else 'private'}, commit {commit[:12]})")
    return 0
