"""Validate the anatomy check on device styles it was not tuned on (and on the training phantom).

Writes docs/anatomy_validation.md and docs/anatomy_validation.json:
    python benchmarks/validate_anatomy.py --per-verdict 60 --per-verdict-large 40

Scans come from `medicraft_hf.data.phantom_styles` (its own renderer, not the training
phantom): each is drawn for one verdict of `docs/anatomy_check.md`, in one of the
held-out device styles, on which no threshold was chosen. The tuning styles and the
training phantom are reported too, for comparison.
"""

import argparse
import time
from collections import Counter
from pathlib import Path

from medicraft_hf.data.phantom_styles import (
    FOURTH_HELDOUT_STYLES,
    FRESH_HELDOUT_STYLES,
    HELDOUT_STYLES,
    STYLES,
    THIRD_HELDOUT_STYLES,
    TUNING_STYLES,
    VERDICTS,
    random_style,
    validation_set,
)
from medicraft_hf.evaluation.anatomy import ANATOMY_VERDICTS, check_anatomy, validate_on_phantom
from medicraft_hf.io import write_json_atomic, write_text_atomic


def run_styles(styles, size, per_verdict, seed):
    confusion = {v: Counter() for v in VERDICTS}
    by_style = {}
    low_conf = []
    start = time.perf_counter()
    for image, truth in validation_set(styles, [size], per_verdict, seed=seed):
        result = check_anatomy(image)
        confusion[truth["verdict"]][result.verdict] += 1
        by_style.setdefault(truth["style"], Counter())["n"] += 1
        by_style[truth["style"]]["right"] += result.verdict == truth["verdict"]
        low_conf.append((result.confidence, result.verdict == truth["verdict"]))
    low_conf.sort()
    k = max(1, len(low_conf) // 10)
    wrong = sum(not right for _, right in low_conf)
    return {
        "size": list(size), "styles": [getattr(s, "name", s) for s in styles], "per_verdict": per_verdict, "seed": seed,
        "seconds": round(time.perf_counter() - start, 1),
        "accuracy": {v: round(confusion[v][v] / max(1, sum(confusion[v].values())), 4) for v in VERDICTS},
        "confusion": {v: {w: confusion[v][w] for w in ANATOMY_VERDICTS} for v in VERDICTS},
        "accuracy_by_style": {s: round(c["right"] / max(1, c["n"]), 4) for s, c in by_style.items()},
        # How well the confidence ranks: the share of all errors among the least confident 10%.
        "errors_in_least_confident_10pct": [sum(not r for _, r in low_conf[:k]), wrong],
    }


def table(result: dict) -> str:
    lines = ["| drawn as | accuracy | " + " | ".join(ANATOMY_VERDICTS) + " |",
             "|---|---|" + "---|" * len(ANATOMY_VERDICTS)]
    for v, row in result["confusion"].items():
        lines.append(f"| {v} | {result['accuracy'][v]:.1%} | " + " | ".join(str(row[w]) for w in ANATOMY_VERDICTS) + " |")
    by_style = ", ".join(f"{s} {a:.0%}" for s, a in result["accuracy_by_style"].items())
    k, n = result["errors_in_least_confident_10pct"]
    return "\n".join(lines) + f"\n\nAccuracy by style: {by_style}. Errors among the least confident 10%: {k} of {n}.\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-verdict", type=int, default=60, help="held-out scans per verdict at 64x128")
    parser.add_argument("--per-verdict-large", type=int, default=40, help="held-out scans per verdict at 256x512")
    parser.add_argument("--per-verdict-tuning", type=int, default=32,
                        help="tuning-style scans per verdict at 64x128 (half at 256x512)")
    parser.add_argument("--per-verdict-hd", type=int, default=20,
                        help="fourth-group scans per verdict at 496x1024")
    parser.add_argument("--out", default="docs", help="folder for anatomy_validation.{md,json}")
    parser.add_argument("--only", choices=["heldout", "fresh_heldout", "third_heldout", "fourth_heldout"],
                        help="run this held-out group alone (e.g. once, after a change): writes "
                             "anatomy_validation_<group>.{json,md} and leaves the full files alone")
    args = parser.parse_args()
    results = {"heldout": [], "tuning": [], "training_phantom": None}
    sections = []
    sizes = (((64, 128), args.per_verdict), ((256, 512), args.per_verdict_large))
    groups = (("heldout", "Held-out styles (session 5)", HELDOUT_STYLES, 2000, sizes),
              ("fresh_heldout", "Fresh held-out styles (session 6)", FRESH_HELDOUT_STYLES, 3000, sizes),
              ("third_heldout", "Third held-out styles (session 6, end)", THIRD_HELDOUT_STYLES, 4000, sizes),
              ("fourth_heldout", "Fourth held-out styles (session 8)", FOURTH_HELDOUT_STYLES, 5000,
               (*sizes, ((496, 1024), args.per_verdict_hd))))
    if args.only:
        groups = tuple(g for g in groups if g[0] == args.only)
        results = {}
    for key, title, styles, seed, group_sizes in groups:
        results[key] = []
        for size, n in group_sizes:
            r = run_styles(styles, size, n, seed=seed)
            results[key].append(r)
            sections.append(f"### {title}, {size[0]}x{size[1]}: {n} scans per verdict\n\n" + table(r))
            print(sections[-1], flush=True)
    if args.only:
        out = Path(args.out)
        write_json_atomic(out / f"anatomy_validation_{args.only}.json", results)
        write_text_atomic(out / f"anatomy_validation_{args.only}.md", "\n".join(sections))
        return
    # Tuning: the four named tuning styles and twelve drawn by `random_style` (seeds [16, i]).
    tuning = [STYLES[s] for s in TUNING_STYLES] + [random_style([16, i]) for i in range(12)]
    for size, n in (((64, 128), args.per_verdict_tuning), ((256, 512), args.per_verdict_tuning // 2)):
        r = run_styles(tuning, size, n, seed=11)
        results["tuning"].append(r)
        sections.append(f"### Tuning styles (4 named + 12 random), {size[0]}x{size[1]}: {n} scans per verdict\n\n"
                        + table(r))
        print(sections[-1], flush=True)
    phantom = validate_on_phantom((64, 128), per_class=5)
    results["training_phantom"] = phantom
    lines = ["| phantom category | expected | accuracy |", "|---|---|---|"]
    lines += [f"| {c} | {phantom['expected'][c]} | {a:.0%} |" for c, a in phantom["accuracy"].items()]
    sections.append("### Training phantom (`render_bscan(..., defect=...)`), 64x128, 20 scans per category\n\n"
                    + "\n".join(lines) + "\n")
    print(sections[-1])
    out = Path(args.out)
    write_json_atomic(out / "anatomy_validation.json", results)
    # The prose of docs/anatomy_validation.md (what falls short and why) is written by hand around these tables.
    write_text_atomic(out / "anatomy_validation_tables.md", "\n".join(sections))


if __name__ == "__main__":
    main()
