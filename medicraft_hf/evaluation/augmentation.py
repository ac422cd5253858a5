"""The augmentation study: does synthetic data help a classifier trained on an imbalanced real set?

From the real train split (as imbalanced as the clinic's) and a pool of generated scans
(`medicraft generate --per-class N`), every arm trains the same classifier, with the same
seeds and budget rule, on real + some synthetic scans (TRSTR) and is compared with real only
(TRTR) on the same patient-held-out test patients:

- `balance`: synthetic scans that fill every class up to the majority class (`--balance-to`);
- `x<k>`: class-balanced synthetic scans, k times as many as the real ones;
- each of them again `+filtered`: only generated scans that the real-trained classifier (TRTR,
  first seed) assigns to their class, as in published work that filters by class fidelity.

Scans are taken from the pool in its order (the generation seed order), so the same pool gives
the same arms. Results are paired differences TRSTR minus TRTR (same test patients and the same
classifier seed on both sides) of balanced accuracy and of each minority class's recall, per
scan and per exam, with 95% intervals (`evaluation.uncertainty`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medicraft_hf.evaluation import inputs
from medicraft_hf.evaluation.classifier import ClassifierSettings, embed_and_predict
from medicraft_hf.evaluation.protocols import run_protocols
from medicraft_hf.evaluation.uncertainty import (
    bootstrap_metrics,
    paired_difference,
    prediction_levels,
    predictions_record,
)
from medicraft_hf.io import write_json_atomic, write_text_atomic

REPORT_LEVELS = ("scan", "exam_learned", "exam_rule")


def arm_counts(real_counts: list[int], arm: str) -> list[int]:
    """Synthetic scans per class of an arm: 'balance' or 'x<k>' (k times the real total, balanced)."""
    if arm == "balance":
        majority = max(real_counts)
        return [majority - n for n in real_counts]
    if arm.startswith("x"):
        try:
            multiple = float(arm[1:])
        except ValueError:
            multiple = -1.0
        if multiple > 0:
            total = round(multiple * sum(real_counts))
            per_class, extra = divmod(total, len(real_counts))
            return [per_class + (c < extra) for c in range(len(real_counts))]
    raise ValueError(f"Unknown arm {arm!r}: use 'balance' or 'x<k>' with k > 0 (e.g. x2).")


def draw_from_pool(labels: np.ndarray, counts: list[int], eligible: np.ndarray, class_names, arm: str,
                   up_to: bool = False) -> np.ndarray:
    """Indices of the first `counts[c]` eligible pool scans of each class c, in pool order.

    Too few eligible scans is an error, or with `up_to` (a filtered arm) takes all there are."""
    picked = []
    for c, n in enumerate(counts):
        candidates = np.flatnonzero((labels == c) & eligible)
        if len(candidates) < n and not up_to:
            raise ValueError(f"Arm {arm!r} needs {n} synthetic {class_names[c]!r} scans but the pool has "
                             f"{len(candidates)} usable; generate a larger pool (medicraft generate --per-class N).")
        picked.extend(candidates[:n])
    return np.sort(np.asarray(picked, dtype=np.int64))


def run_augmentation_study(real, pool, out_dir, *, arms=("balance", "x2", "x5"), filtered: bool = True,
                           seeds=(0, 1, 2), resolution=(64, 128), settings: ClassifierSettings | None = None,
                           max_real_train: int | None = None, n_boot: int = 1000, log=print) -> dict:
    """Run every arm (and its filtered twin) and write augmentation.{json,md} to `out_dir`.

    Finished classifier runs are kept in `out_dir/runs/` (TRTR once for all arms): a rerun resumes.
    """
    settings = settings or ClassifierSettings()
    out_dir = Path(out_dir)
    real_dd, pool_dd = inputs.load_side(real, "real"), inputs.load_side(pool, "synthetic pool")
    class_names = inputs.check_pair(real_dd, pool_dd, synthetic_every_class=False)
    inputs.check_same_size(real_dd, pool_dd)
    log(f"decoding images at {resolution[0]}x{resolution[1]}")
    real_train = inputs.stratified_cap(inputs.to_image_set(real_dd["train"], resolution, "real/train"), max_real_train)
    pool_set = inputs.to_image_set(inputs.synthetic_rows(pool_dd), resolution, "synthetic pool")
    real_test = inputs.to_image_set(real_dd["test"], resolution, "real/test")
    validation = None
    if settings.patience > 0 and "validation" in real_dd:
        validation = inputs.to_image_set(real_dd["validation"], resolution, "real/validation")
    real_counts = real_train.class_counts(len(class_names))
    majority = max(real_counts)
    minority = [c for c, n in enumerate(real_counts) if n < majority]
    common = dict(class_names=class_names, resolution=resolution, settings=settings, seeds=list(seeds), log=log,
                  validation=validation)

    # Real only, once for every arm; its first seed's classifier judges the pool's class fidelity.
    _, model, trtr_probs, trtr_val = run_protocols(real_train, pool_set, real_test, protocols=("TRTR",),
                                                   runs_dir=out_dir / "runs" / "real-only",
                                                   keep_model=("TRTR", list(seeds)[0]), **common)
    _, pool_probs = embed_and_predict(model, pool_set)
    faithful = pool_probs.argmax(1) == pool_set.labels
    everything = np.ones(len(pool_set), dtype=bool)

    result = {"real": str(real), "pool": str(pool), "class_names": list(class_names), "resolution": list(resolution),
              "seeds": list(seeds), "real_train_counts": real_counts, "minority_classes": [class_names[c] for c in minority],
              "pool_counts": pool_set.class_counts(len(class_names)),
              "pool_faithful_counts": np.bincount(pool_set.labels[faithful], minlength=len(class_names)).tolist(),
              "arms": {}}
    metrics = ["balanced_accuracy", *(f"recall_{c}" for c in minority)]
    for arm in arms:
        counts = arm_counts(real_counts, arm)
        for name, eligible in ((arm, everything), *([(f"{arm}+filtered", faithful)] if filtered else [])):
            picked = pool_set.subset(draw_from_pool(pool_set.labels, counts, eligible, class_names, name,
                                                    up_to=eligible is faithful))
            used = picked.class_counts(len(class_names))
            log(f"[{name}] real {len(real_train)} + synthetic {len(picked)} {used}")
            if used != counts:  # a filtered arm short of faithful scans: said here and in the report
                log(f"[{name}] warning: the pool has too few scans the real-trained classifier assigns to their "
                    f"class; {used} used of {counts} wanted (generate a larger pool)")
            _, _, probs, val_probs = run_protocols(real_train, picked, real_test, protocols=("TRSTR",),
                                                   runs_dir=out_dir / "runs" / name, keep_model=None, **common)
            predictions = predictions_record(real_test, class_names, {**trtr_probs, **probs}, validation,
                                             val_probs and {**trtr_val, **val_probs})
            levels = {}
            for level, runs, labels, groups in prediction_levels(predictions):
                if level not in REPORT_LEVELS:
                    continue
                kw = dict(n_boot=n_boot, num_classes=len(class_names))
                levels[level] = {
                    "real_only": bootstrap_metrics(runs["TRTR"], labels, groups, metrics, **kw),
                    "augmented": bootstrap_metrics(runs["TRSTR"], labels, groups, metrics, **kw),
                    "difference": {m: paired_difference(runs["TRSTR"], runs["TRTR"], labels, groups, m, **kw)
                                   for m in metrics},
                }
            result["arms"][name] = {"synthetic_counts": used, "wanted_counts": counts, "levels": levels}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "augmentation.json", result)
    write_text_atomic(out_dir / "augmentation.md", markdown(result))
    return result


def markdown(result: dict) -> str:
    names = result["class_names"]
    minority = result["minority_classes"]
    metrics = ["balanced_accuracy", *(f"recall_{names.index(c)}" for c in minority)]
    heads = ["balanced accuracy", *(f"recall {c}" for c in minority)]

    def cell(x):
        return "—" if x.get("mean") is None else f"{x['mean']:+.3f} [{x['low']:+.3f}, {x['high']:+.3f}]"

    lines = ["# Augmentation study", "",
             f"Real: `{result['real']}` (train split, {result['real_train_counts']} per class {names}); pool: "
             f"`{result['pool']}` ({result['pool_counts']} per class, of which the real-trained classifier assigns "
             f"{result['pool_faithful_counts']} to their class). Classifier input {result['resolution'][0]}x"
             f"{result['resolution'][1]}, seeds {result['seeds']}.", "",
             "Each cell: real + synthetic (TRSTR) minus real only (TRTR), same test patients and classifier seed, "
             "95% interval (paired bootstrap over test patients x seeds).", ""]
    for level in REPORT_LEVELS:
        arms = {a: r["levels"][level] for a, r in result["arms"].items() if level in r["levels"]}
        if not arms:
            continue
        first = next(iter(arms.values()))["real_only"]
        reference = ", ".join(f"{h} {first[m]['mean']:.3f}" for h, m in zip(heads, metrics))
        lines += [f"## {level} (real only: {reference})", "",
                  "| arm | synthetic per class | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]
        for arm, r in arms.items():
            used, wanted = result["arms"][arm]["synthetic_counts"], result["arms"][arm]["wanted_counts"]
            counts = f"{used}" + ("" if used == wanted else f" (wanted {wanted})")
            lines.append(f"| {arm} | {counts} | " + " | ".join(cell(r["difference"][m]) for m in metrics) + " |")
        lines.append("")
    return "\n".join(lines)

