"""The main job out of the box: a class-balanced synthetic OCT dataset from the embedded
demo model, a per-class sample grid and the anatomy check's verdicts, on CPU, offline.

It is `medicraft generate --per-class N` plus a grid: run it again to resume.
"""

from __future__ import annotations

from pathlib import Path

from medicraft_hf.embedded import embedded_help

HELP = "generate a balanced synthetic dataset + sample grid with the embedded demo model (CPU, offline)"


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="outputs/demo", help="output folder")
    parser.add_argument("--per-class", type=int, default=25, help="images of every class")
    parser.add_argument("--model", default=None, help="pipeline folder or Hub id, or an embedded model: "
                        + embedded_help())
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: generate's for the model)")
    parser.add_argument("--seed", type=int, default=0, help="base seed")
    parser.add_argument("--grid-per-class", type=int, default=8, help="images of each class in the grid")


def run(args) -> int:
    # Heavy imports here so that `medicraft --help` stays fast.
    from medicraft_hf.data.load import load_dataset_folder
    from medicraft_hf.evaluation.anatomy import check_anatomy
    from medicraft_hf.few_step import sampling_choice
    from medicraft_hf.generate import generate_dataset
    from medicraft_hf.io import atomic_path, write_json_atomic
    from medicraft_hf.schema import class_names_of
    from medicraft_hf.training.validation import tile

    if args.per_class < 1:
        raise ValueError(f"--per-class must be a positive integer, got {args.per_class}.")
    out = Path(args.out)
    result = generate_dataset(out / "synthetic", per_class=args.per_class, seed=args.seed, name="oct-synthetic-demo",
                              **sampling_choice(args.model, None, None, args.steps))
    print(result.summary())

    train = load_dataset_folder(out / "synthetic", split="train")
    names = class_names_of(train)
    labels = train["label"]
    per_row = min(args.grid_per_class, args.per_class)
    picks = [[i for i, label in enumerate(labels) if label == c][:per_row] for c in range(len(names))]
    grid = tile([train[i]["image"] for row in picks for i in row], names, per_row)
    with atomic_path(out / "samples_grid.png") as tmp:
        grid.save(tmp)

    verdicts: dict[str, dict[str, int]] = {name: {} for name in names}
    for row in train:
        verdict = check_anatomy(row["image"]).verdict
        by_class = verdicts[names[row["label"]]]
        by_class[verdict] = by_class.get(verdict, 0) + 1
    ok = sum(v.get("ok", 0) for v in verdicts.values())
    write_json_atomic(out / "anatomy_summary.json", {"per_class": verdicts, "ok": ok, "total": len(train)})

    print(f"sample grid: {out / 'samples_grid.png'}")
    print(f"anatomy check: {ok}/{len(train)} ok ({100 * ok / len(train):.0f}%); per class: {verdicts}")
    print(f"load it: datasets.load_dataset({str(out / 'synthetic')!r})")
    return 0
