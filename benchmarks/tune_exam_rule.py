"""The exam rule's fluid read, chosen on tuning cohorts that are neither benchmark (issue 17).

The clinic's rule (`medicraft_hf.evaluation.exam_rule`) calls an eye nevus_fluid from the fluid
shares of its 3 most lesioned planes: the largest ("max": one plane is enough), the second
largest ("second": two planes) or their mean. Each read is scored on the test exams of two
cohorts, one of each benchmark's shape (clinic-v2 definitions like benchmark-v2, clinic like
benchmark-v1) drawn with other seeds at 64x128, from the same TRTR runs (3 seeds): balanced
accuracy, nevus and nevus_fluid recall, and the paired difference to "max" with its interval.

    python benchmarks/tune_exam_rule.py --work tune-rule

Resumable: cohorts and finished classifier runs are reused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tune_benchmark_classifier import build_cohort

from medicraft_hf.evaluation import exam_rule
from medicraft_hf.evaluation.ceiling import PREDICTIONS_FILE, run_ceiling
from medicraft_hf.evaluation.classifier import ClassifierSettings
from medicraft_hf.evaluation.uncertainty import bootstrap_metrics, paired_difference

# shape: the tuning seed (benchmark-v1 is 1017, benchmark-v2 1021; session 13's cohort 2026 at 256x512)
COHORTS = {"benchmark-v2": 2027, "benchmark-v1": 2026}
SIZE = (64, 128)


def rule_runs(predictions: dict, fluid_read: str):
    """Per classifier run, the rule's one-hot test exam decisions; the exam labels and patients."""
    val, names = predictions["validation"], predictions["class_names"]
    exams, patients = predictions["exam_ids"], predictions["patient_ids"]
    runs, labels, order = [], None, None
    for v, r in zip(val["runs"]["TRTR"], predictions["runs"]["TRTR"]):
        probs, labels, order = exam_rule.rule_exam_probs(np.asarray(v), val["labels"], val["exam_ids"], np.asarray(r),
                                                         predictions["labels"], exams, names, fluid_read=fluid_read)
        runs.append(probs)
    patient_of_exam = dict(zip(exams, patients))
    return runs, np.asarray(labels), [patient_of_exam[e] for e in order]


def compare_reads(predictions: dict, n_boot: int) -> dict:
    names = predictions["class_names"]
    n, f = names.index("nevus"), names.index("nevus_fluid")
    metrics = ["balanced_accuracy", f"recall_{n}", f"recall_{f}"]
    kw = dict(n_boot=n_boot, num_classes=len(names))
    base, labels, groups = rule_runs(predictions, "max")
    out = {}
    for read in exam_rule.FLUID_READS:
        runs = base if read == "max" else rule_runs(predictions, read)[0]
        out[read] = {"metrics": bootstrap_metrics(runs, labels, groups, metrics, **kw),
                     "minus_max": paired_difference(runs, base, labels, groups, "balanced_accuracy", **kw)}
    return {"metric_names": metrics, "reads": out}


def table(results: dict) -> str:
    def cell(x):
        return f"{x['mean']:.3f} [{x['low']:.3f}, {x['high']:.3f}]"

    lines = ["| cohort | fluid read | exam_rule balanced accuracy | nevus recall | nevus_fluid recall | minus 'max' |",
             "|---|---|---|---|---|---|"]
    for cohort, r in results.items():
        bal, rn, rf = r["metric_names"]
        for read, v in r["reads"].items():
            m = v["metrics"]
            lines.append(f"| {cohort} | {read} | {cell(m[bal])} | {cell(m[rn])} | {cell(m[rf])} | {cell(v['minus_max'])} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="folder for the cohorts and their classifier runs")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--bootstrap", type=int, default=1000)
    args = p.parse_args(argv)
    work = Path(args.work)
    results = {}
    for shape, seed in COHORTS.items():
        cohort = build_cohort(work / f"cohort-{shape}-{SIZE[0]}x{SIZE[1]}", shape, seed, SIZE)
        ceiling = work / f"ceiling-{shape}-{SIZE[0]}x{SIZE[1]}"
        if not (ceiling / PREDICTIONS_FILE).exists():
            run_ceiling(cohort, ceiling, seeds=range(args.seeds), resolution=SIZE, n_boot=200,
                        settings=ClassifierSettings.with_budget())  # early stopping, as `medicraft evaluate`
        results[f"{shape}-shaped (seed {seed})"] = compare_reads(json.loads((ceiling / PREDICTIONS_FILE).read_text()),
                                                                 args.bootstrap)
    (work / "exam_rule_reads.json").write_text(json.dumps(results, indent=1))
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
