"""Make a procedural OCT phantom dataset (Hub layout: README.md + data/*.parquet).

Each patient is one exam of 12 radial B-scans (one every 30 degrees) of class healthy,
nevus, nevus_fluid or melanoma, with per-image ground truth (fovea, surfaces, lesion) in
the `ground_truth` column. Patients are split into train/validation/test by patient.
Deterministic: the same arguments give the same dataset.
"""

from __future__ import annotations

HELP = "make a procedural OCT phantom dataset (12 radial B-scans per patient, ground truth)"


def add_arguments(parser) -> None:
    parser.add_argument("--preset", default=None,
                        help="a named cohort, benchmark-v2 or benchmark-v1 (docs/benchmark.md): fixes patients per split "
                             "and class, seed and class definitions; only --size, --out, --name and --license still apply")
    parser.add_argument("--num-patients", type=int, default=40, help="number of patients (one exam of 12 B-scans each)")
    parser.add_argument("--size", "--resolution", default="256x512", help="image size HxW")
    parser.add_argument("--seed", type=int, default=0, help="seed of the phantom and of the patient split")
    parser.add_argument("--out", required=True, help="output dataset folder (created; replaced only if it holds a saved dataset)")
    parser.add_argument("--classes", default="healthy,nevus,nevus_fluid,melanoma",
                        help="comma-separated classes in label-id order (any of healthy, nevus, nevus_fluid, melanoma)")
    parser.add_argument("--class-weights", default=None,
                        help="patient fraction per class, e.g. healthy=0.4,nevus=0.3,nevus_fluid=0.15,melanoma=0.15 "
                             "(the default)")
    parser.add_argument("--fractions", default="0.7,0.15,0.15", help="train,validation,test fractions of patients")
    parser.add_argument("--name", default=None, help="dataset name or repo id shown in the card (default: the --out folder name)")
    parser.add_argument("--license", default="mit", help="license field of the dataset card")


def _weights(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    weights = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(f"--class-weights item {item!r} is not name=number, e.g. healthy=0.4")
    return weights


def run(args) -> int:
    from medicraft_hf.data.phantom import build_phantom_dataset, save_phantom_dataset
    from medicraft_hf.parsing import parse_fractions, parse_size

    size = parse_size(args.size, "--size")
    if args.preset:
        return _run_preset(args, size)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    fractions = parse_fractions(args.fractions, "--fractions")
    dsdict = build_phantom_dataset(args.num_patients, seed=args.seed, size=size, class_names=classes,
                                   class_weights=_weights(args.class_weights), fractions=fractions)
    out = save_phantom_dataset(dsdict, args.out, name=args.name, seed=args.seed, size=size, license=args.license)
    counts = ", ".join(f"{split}={len(ds)}" for split, ds in dsdict.items())
    print(f"phantom {out} ({counts}; classes {classes})")
    return 0


def _run_preset(args, size) -> int:
    from medicraft_hf.data.phantom import save_phantom_dataset
    from medicraft_hf.data.phantom_presets import build_preset_dataset, get_preset

    preset = get_preset(args.preset)
    custom = [flag for flag, value, default in (("--num-patients", args.num_patients, 40), ("--seed", args.seed, 0),
                                                ("--class-weights", args.class_weights, None),
                                                ("--fractions", args.fractions, "0.7,0.15,0.15"),
                                                ("--classes", args.classes, "healthy,nevus,nevus_fluid,melanoma"))
              if value != default]
    if custom:
        raise ValueError(f"--preset {preset.name} fixes the cohort; drop {', '.join(custom)}.")
    dsdict = build_preset_dataset(preset.name, size)
    out = save_phantom_dataset(dsdict, args.out, name=args.name or preset.name, seed=preset.seed, size=size,
                               license=args.license, preset=preset)
    counts = ", ".join(f"{split}={len(ds)}" for split, ds in dsdict.items())
    print(f"phantom {out} (preset {preset.name}; {counts})")
    return 0
