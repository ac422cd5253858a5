"""Evaluate synthetic OCT data against real data: usefulness (ViT, TRTR / TSTR / TRSTR over
several seeds), fidelity (FID, KID, precision/recall), privacy (memorization audit) and
anatomy; writes report.md, report.json and PNG plots to --out."""

from __future__ import annotations

HELP = "Is the synthetic data useful, faithful, private and anatomically plausible? Writes a report."


def add_arguments(parser) -> None:
    parser.add_argument("--real", required=True,
                        help="Real dataset folder or Hub id (needs 'train' and a patient-held-out 'test' split).")
    parser.add_argument("--synthetic", default=None,
                        help="Synthetic dataset folder or Hub id (all splits are used). Without it: the real-data "
                             "ceiling alone (TRTR with intervals; docs/benchmark.md).")
    parser.add_argument("--out", required=True, help="Report directory (reruns resume finished classifier runs).")
    parser.add_argument("--seeds", type=int, default=3, help="Classifier seeds per protocol (mean ± std; use >= 3).")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="Classifier optimizer steps per run, the same rule for every protocol: the cap with "
                             "early stopping (default 3000), the fixed budget with --patience 0 (default 450).")
    parser.add_argument("--patience", type=int, default=6,
                        help="Early stopping: stop after this many validation evaluations without a better real "
                             "validation balanced accuracy and keep the best checkpoint (0: fixed --max-steps).")
    parser.add_argument("--eval-every", type=int, default=50, help="Steps between validation evaluations.")
    parser.add_argument("--epochs", type=float, default=None, help="Train for this many epochs instead of --max-steps.")
    parser.add_argument("--resolution", default="64x128", help="HxW the images are evaluated at.")
    parser.add_argument("--model_name_or_path", default=None,
                        help="Pretrained ViT checkpoint to fine-tune (default: a small ViT from config, offline).")
    parser.add_argument("--max-train-images", type=int, default=None,
                        help="Cap real-train and synthetic images (class-stratified) for quick runs.")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--patch-size", type=int, default=None, help="ViT patch size (default: classifier input height // 16).")
    parser.add_argument("--vshift", type=float, default=0.1,
                        help="Random up-down shifts while training, up to this fraction of the height (0: none).")
    parser.add_argument("--no-anatomy", action="store_true", help="Skip the anatomy check.")
    parser.add_argument("--compare-to", default=None, metavar="REPORT_DIR",
                        help="Another evaluation's report folder (same real data, resolution and seeds): add a "
                             "paired comparison, this synthetic set minus that one, with intervals.")
    parser.add_argument("--protocols", default="TRTR,TSTR,TRSTR",
                        help="Comma-separated protocols to run (TRTR, the reference, always among them).")
    parser.add_argument("--bootstrap", type=int, default=1000,
                        help="Bootstrap replicates (test patients x seeds) for the intervals.")
    parser.add_argument("--interval", default="run", choices=("run", "mean"),
                        help="What an interval is about: 'run', what one classifier run would give (the "
                             "default, wider); 'mean', the reported mean over seeds (read it when comparing "
                             "two figures).")


def run(args) -> int:
    from medicraft_hf.evaluation.classifier import ClassifierSettings
    from medicraft_hf.evaluation.run import run_evaluation
    from medicraft_hf.parsing import parse_resolution

    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}.")
    if not 0 <= args.vshift < 0.5:
        raise ValueError(f"--vshift is a fraction of the image height in [0, 0.5), got {args.vshift}.")
    if args.patience < 0 or args.eval_every < 1:
        raise ValueError(f"--patience must be >= 0 and --eval-every >= 1, got {args.patience} and {args.eval_every}.")
    settings = ClassifierSettings.with_budget(
        patience=args.patience,
        max_steps=args.max_steps,
        eval_every=args.eval_every,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patch_size=args.patch_size,
        vshift=args.vshift,
        model_name_or_path=args.model_name_or_path,
    )
    run_evaluation(
        args.real,
        args.synthetic,
        args.out,
        seeds=range(args.seeds),
        resolution=parse_resolution(args.resolution),
        settings=settings,
        max_train_images=args.max_train_images,
        anatomy=not args.no_anatomy,
        compare_to=args.compare_to,
        n_boot=args.bootstrap,
        interval=args.interval,
        protocols=tuple(p.strip() for p in args.protocols.split(",") if p.strip()),
    )
    print(f"Report: {args.out}/report.md")
    return 0
