"""Generate a class-balanced synthetic OCT dataset (parquet shards + DatasetCard), resumably.

Counts come from --per-class N, --counts name=N,... or --balance-to <real dataset>
(each class filled up to the majority class). Every image's noise derives from
(--seed, image index), so the dataset is identical however many processes make it
(`accelerate launch -m medicraft_hf.generate ...`) and however often it is interrupted:
run the same command again to resume, or to retry a failed --push-to-hub.
"""

from __future__ import annotations

from medicraft_hf import sampling_defaults as defaults
from medicraft_hf.embedded import embedded_help

HELP = "generate a class-balanced synthetic dataset (resumable, multi-process, optional Hub push)"


def add_arguments(parser) -> None:
    parser.add_argument("--model", default=None, help="pipeline folder or Hub id, or an embedded model: "
                        + embedded_help())
    parser.add_argument("--revision", default=None, help="Hub revision of --model")
    parser.add_argument("--out", required=True, help="output folder (Hub layout: README.md + data/*.parquet)")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--per-class", type=int, metavar="N", help="N images of every class")
    how.add_argument("--counts", metavar="NAME=N,...", help="images per class, e.g. nevus=50,melanoma=200")
    how.add_argument("--balance-to", metavar="DATASET", help="real dataset (folder or Hub id): fill classes up to the majority")
    parser.add_argument("--balance-split", default="train", help="split of --balance-to to count")
    parser.add_argument("--scheduler", default=None, choices=defaults.SCHEDULER_NAMES,
                        help=f"sampler (default: {defaults.DEFAULT_SCHEDULER}; a few-step model keeps its own)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"denoising steps (default: {defaults.DEFAULT_STEPS}; {defaults.FEW_STEP_DEFAULT_STEPS} "
                        "for a few-step model)")
    parser.add_argument("--guidance-scale", type=float, default=defaults.DEFAULT_GUIDANCE_SCALE, help="classifier-free guidance")
    parser.add_argument("--batch-size", type=int, default=defaults.DEFAULT_BATCH_SIZE,
                        help="images per pipeline call (memory and speed only: images do not depend on it)")
    parser.add_argument("--seed", type=int, default=0, help="base seed; image i uses a seed derived from (seed, i)")
    parser.add_argument("--split", default="train", help="split name of the synthetic dataset")
    parser.add_argument("--anatomy-filter", action="store_true", help="keep only images passing the anatomy check")
    parser.add_argument("--anatomy-threshold", type=float, default=None,
                        help=f"minimum anatomy score kept by --anatomy-filter (None: {defaults.DEFAULT_ANATOMY_THRESHOLD}, "
                        "or the --anatomy-calibration one)")
    parser.add_argument("--anatomy-calibration", default=None, metavar="JSON",
                        help="calibration.json from `medicraft review-report --calibrate` (gives the threshold)")
    parser.add_argument("--evaluation-report", default=None, metavar="REPORT",
                        help="report.json (or its folder) of `medicraft evaluate`, summarized in the card")
    parser.add_argument("--name", default=None, help="dataset name in the card (default: --push-to-hub id or --out name)")
    parser.add_argument("--overwrite", action="store_true", help="discard an earlier run in --out")
    parser.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="push the dataset to this Hub dataset repo")
    parser.add_argument("--public", action="store_true", help="create the Hub repo public (default: private)")
    parser.add_argument("--flush-every", type=int, default=defaults.FLUSH_EVERY,
                        help="images per working shard (the most a kill can lose, per process)")


# The library's argument names, as this command's flags (medicraft_hf.cli renames errors with it).
FLAGS = {
    "num_inference_steps": "--steps", "guidance_scale": "--guidance-scale", "seed": "--seed",
    "batch_size": "--batch-size", "flush_every": "--flush-every", "split": "--split",
    "anatomy_threshold": "--anatomy-threshold", "push_to_hub": "--push-to-hub", "per_class": "--per-class",
}


def anatomy_filter_of(args):
    from medicraft_hf.generate import AnatomyFilter

    if not args.anatomy_filter:
        if args.anatomy_threshold is not None or args.anatomy_calibration is not None:
            raise ValueError("--anatomy-threshold and --anatomy-calibration need --anatomy-filter.")
        return None
    if args.anatomy_threshold is not None and args.anatomy_calibration is not None:
        raise ValueError("Give --anatomy-threshold or --anatomy-calibration, not both.")
    if args.anatomy_calibration is not None:
        import sys

        from medicraft_hf.review.calibrate import calibration_evidence, calibration_warnings, load_calibration

        calibration = load_calibration(args.anatomy_calibration)
        if not calibration_evidence(calibration):
            print(f"warning: --anatomy-calibration {args.anatomy_calibration} carries no expert counts or balanced "
                  "accuracy, so nothing says it is informative; its threshold is used as given.", file=sys.stderr)
        warnings = calibration_warnings(calibration)  # recomputed: older files carry none
        if warnings:
            raise ValueError(
                f"--anatomy-calibration {args.anatomy_calibration} is not informative ({'; '.join(warnings)}): "
                "rate more scans and calibrate again, or pass --anatomy-threshold "
                f"{float(calibration['threshold']):.4f} to filter with it anyway."
            )
        return AnatomyFilter(float(calibration["threshold"]))
    return AnatomyFilter(defaults.DEFAULT_ANATOMY_THRESHOLD if args.anatomy_threshold is None else args.anatomy_threshold)


def run(args) -> int:
    from accelerate import PartialState

    from medicraft_hf.distributed import leave_process_group
    from medicraft_hf.errors import RunError
    from medicraft_hf.few_step import sampling_choice
    from medicraft_hf.generate import generate_dataset, parse_counts

    counts = parse_counts(args.counts) if args.counts is not None else None
    try:
        result = generate_dataset(
            args.out, counts, per_class=args.per_class, balance_to=args.balance_to, balance_split=args.balance_split,
            **sampling_choice(args.model, args.revision, args.scheduler, args.steps),
            guidance_scale=args.guidance_scale, seed=args.seed,
            batch_size=args.batch_size, split=args.split, anatomy_filter=anatomy_filter_of(args),
            evaluation_report=args.evaluation_report, name=args.name, overwrite=args.overwrite,
            push_to_hub=args.push_to_hub, private=not args.public, flush_every=args.flush_every,
        )
    except RunError:  # e.g. the main process's push failed, after all the ranks' work: all ranks still exit
        leave_process_group(PartialState())
        raise
    state = PartialState()
    if state.is_main_process:
        print(result.summary())
        if result.pushed_commit:
            print(f"pushed to dataset repo {args.push_to_hub} ({'public' if args.public else 'private'}, "
                  f"commit {result.pushed_commit[:12]})")
    leave_process_group(state)  # under `accelerate launch`: every rank exits (see medicraft_hf.distributed)
    return 0
