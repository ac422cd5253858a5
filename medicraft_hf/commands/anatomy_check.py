"""Check the anatomical plausibility of OCT B-scans (a dataset, an image folder or one image).

Each image gets a verdict (ok / doubled_fovea / no_fovea / hypoplastic_fovea / corrupted),
a plausibility score in [0, 1] and its measurements (pits, contrast, continuity). Writes
`anatomy.csv` (one row per image) and `anatomy_summary.json` (counts overall and per
label) to --out and prints the counts. An image folder is listed as `medicraft build` lists
class folders (`medicraft_hf.data.folders.image_files`: symlinked folders followed, hidden
files left out), so both commands see the same images, and each file is read by the same
checked reader (pixel budget `--max-pixels`, one frame per file, no truncated data): an
unreadable file stops the command with a list of every such file, unless --skip-invalid.
"""

from __future__ import annotations

HELP = "anatomical plausibility of B-scans: ok / doubled / absent / hypoplastic fovea / corrupted"
# The library's argument names -> this command's flags (for errors, see medicraft_hf.errors).
FLAGS = {"max_pixels": "--max-pixels"}


def add_arguments(parser) -> None:
    parser.add_argument("source", help="OCT dataset folder, Hub dataset id, image folder (subfolder = label) or one image")
    parser.add_argument("--out", default=None, help="folder for anatomy.csv and anatomy_summary.json (default: print only)")
    parser.add_argument("--split", default=None, help="only this split of a dataset (default: all splits)")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help="pixel budget of one image file, checked from its header before decoding "
                             "(default: $MEDICRAFT_MAX_PIXELS, else 4096*4096)")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="check the readable images and list each unreadable file in --report instead of failing")
    parser.add_argument("--report", default=None,
                        help="skip report CSV (default: <out>/anatomy_skipped.csv, or printed without --out)")


def run(args) -> int:
    import csv
    import io
    from pathlib import Path

    from medicraft_hf.data.images import max_pixels_budget
    from medicraft_hf.data.problems import InvalidInputError, Problems
    from medicraft_hf.evaluation.anatomy import ANATOMY_VERDICTS, check_source, summarize
    from medicraft_hf.io import write_json_atomic, write_text_atomic

    # Image folders are listed as `medicraft build` lists class folders, and every file is read
    # by the builders' checked reader: an unreadable one is a problem, never a traceback.
    problems = Problems()
    results = check_source(args.source, split=args.split, problems=problems,
                           max_pixels=max_pixels_budget(args.max_pixels))
    if problems and not args.skip_invalid:
        raise InvalidInputError(problems.message("images"))
    if not results:
        raise InvalidInputError(f"No readable images in {args.source}.\n{problems.message('images')}")
    summary = summarize(results)
    overall = summary["overall"]
    print(f"{overall['n']} images: " + ", ".join(f"{v}={overall['counts'][v]}" for v in ANATOMY_VERDICTS)
          + f"; ok fraction {overall['ok_fraction']}, mean score {overall['mean_score']}")
    for label, s in summary.get("per_label", {}).items():
        print(f"  {label}: n={s['n']} ok={s['counts']['ok']} ({s['ok_fraction']})")
    if args.out:
        out = Path(args.out)
        columns = ["image_id", "label", "verdict", "score", "num_pits", "pit_depth", "fovea_x", "contrast",
                   "profile_corr", "jump_fraction", "quality", "retina_thickness"]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)
        write_text_atomic(out / "anatomy.csv", buf.getvalue())
        write_json_atomic(out / "anatomy_summary.json", {"source": str(args.source), "split": args.split,
                                                         "skipped": len(problems), **summary})
        print(f"wrote {out / 'anatomy.csv'} and {out / 'anatomy_summary.json'}")
    if problems:
        report = Path(args.report) if args.report else (Path(args.out) / "anatomy_skipped.csv" if args.out else None)
        if report is not None:
            problems.write_report(report)
            print(f"skipped {len(problems)} unreadable file(s); report: {report}")
        else:
            print(f"skipped {len(problems)} unreadable file(s):")
            for problem in problems:
                print(f"  - {problem}")
    return 0
