"""Make a procedural OCT phantom dataset (Hub layout: README.md + data/*.parquet).

Each patient is one exam of 12 radial B-scans (one every 30 degrees) of class healthy,
nevus, nevus_fluid or melanoma, with per-image ground truth (fovea, surfaces, lesion) in
the `ground_truth` column. Patients are split into train/validation/test by patient.
Deterministic: the same arguments give the same dataset.
"""

from __future__ import annotations

HELP = "make a procedural OCT phantom dataset (12 radial B-scans per patient, ground truth)"


def add_arguments(parser) -> None:
    parser.add_argument("--num-patients", type=int, default=40, help="number of patients (one exam of 12 B-scans each)")
    parser.add_argument("--size", default="256x512", help="image size HxW")
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
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    fractions = parse_fractions(args.fractions, "--fractions")
    dsdict = build_phantom_dataset(args.num_patients, seed=args.seed, size=size, class_names=classes,
                                   class_weights=_weights(args.class_weights), fractions=fractions)
    out = save_phantom_dataset(dsdict, args.out, name=args.name, seed=args.seed, size=size, license=args.license)
    counts = ", ".join(f"{split}={len(ds)}" for split, ds in dsdict.items())
    print(f"phantom {out} ({counts}; classes {classes})")
    return 0
