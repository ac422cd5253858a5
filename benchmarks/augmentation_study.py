"""The augmentation study on the usefulness benchmark (issue 17, item 7): real only vs real +
synthetic filling the minority classes vs real + synthetic at k times the real size, each also
filtered by class fidelity. Library: `medicraft_hf/evaluation/augmentation.py`.

    medicraft generate --model M --per-class 1200 --seed 0 --out POOL
    python benchmarks/augmentation_study.py --real BENCHMARK --pool POOL --out REPORT --resolution 128x256
"""

import argparse
import json
from pathlib import Path

from medicraft_hf.evaluation.augmentation import markdown, run_augmentation_study
from medicraft_hf.evaluation.classifier import ClassifierSettings
from medicraft_hf.parsing import parse_resolution


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", required=True, help="real dataset (train, validation, test splits), folder or Hub id")
    p.add_argument("--pool", required=True, help="synthetic pool: medicraft generate --per-class N output")
    p.add_argument("--out", required=True, help="report folder (reruns resume finished classifier runs)")
    p.add_argument("--arms", default="balance,x2,x5", help="comma-separated: balance, x<k>")
    p.add_argument("--no-filtered", action="store_true", help="skip the class-fidelity-filtered twin of each arm")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--resolution", default="64x128", help="classifier input HxW")
    p.add_argument("--max-real-train", type=int, default=None, help="stratified cap on the real train split")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--patience", type=int, default=6,
                   help="early stopping on the real validation split, as `medicraft evaluate` (0: fixed --max-steps)")
    p.add_argument("--max-steps", type=int, default=None, help="step cap (default 3000; 450 with --patience 0)")
    args = p.parse_args(argv)
    result = run_augmentation_study(args.real, args.pool, args.out, arms=tuple(args.arms.split(",")),
                                    filtered=not args.no_filtered, seeds=tuple(range(args.seeds)),
                                    resolution=parse_resolution(args.resolution), max_real_train=args.max_real_train,
                                    settings=ClassifierSettings.with_budget(args.patience, args.max_steps),
                                    n_boot=args.bootstrap)
    print(markdown(result))
    print(json.dumps({"out": str(Path(args.out) / "augmentation.json")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
