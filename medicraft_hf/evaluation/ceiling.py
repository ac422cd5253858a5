"""The real-data ceiling: TRTR alone (train real, test real), with intervals at every level.

`medicraft evaluate --real DIR --out DIR` without `--synthetic` runs this: what a classifier
trained on the real train split reaches on the patient-held-out test split, per scan, on
the scans whose ground truth shows their label, and per exam. It is the reference every
synthetic set is measured against, and it says whether the benchmark leaves room.
"""

from __future__ import annotations

import time
from pathlib import Path

from medicraft_hf.evaluation import inputs, report
from medicraft_hf.evaluation.classifier import ClassifierSettings
from medicraft_hf.evaluation.protocols import PROTOCOLS, run_protocols
from medicraft_hf.evaluation.uncertainty import check_interval, markdown_lines, predictions_record, uncertainty_report
from medicraft_hf.io import write_json_atomic, write_text_atomic

PREDICTIONS_FILE = "predictions.json"


def run_ceiling(real, out_dir, *, seeds=(0, 1, 2), resolution=(64, 128), settings: ClassifierSettings | None = None,
                n_boot: int = 1000, interval: str = "run", log=print) -> dict:
    """TRTR over `seeds` on `real` (needs train and test; validation for early stopping) -> out_dir/report.*"""
    started = time.time()
    check_interval(interval)  # before any training
    settings = settings or ClassifierSettings()
    out_dir, seeds, resolution = Path(out_dir), list(seeds), tuple(resolution)
    real_dd = inputs.load_side(real, "real")
    class_names = inputs.check_pair(real_dd, real_dd)
    log(f"decoding images at {resolution[0]}x{resolution[1]}")
    train = inputs.to_image_set(real_dd["train"], resolution, "real/train")
    test = inputs.to_image_set(real_dd["test"], resolution, "real/test")
    validation = None
    if settings.patience > 0 and "validation" in real_dd:
        validation = inputs.to_image_set(real_dd["validation"], resolution, "real/validation")
    elif settings.patience > 0:
        log("warning: the real data has no 'validation' split: TRTR trains the fixed max_steps")
    usefulness, _, test_probs, validation_probs = run_protocols(
        train, train, test, class_names, resolution, settings, seeds=seeds, runs_dir=out_dir / "runs",
        protocols=("TRTR",), log=log, validation=validation)
    predictions = predictions_record(test, class_names, test_probs, validation, validation_probs)
    write_json_atomic(out_dir / PREDICTIONS_FILE, predictions)
    log(f"intervals: {n_boot} bootstrap replicates over test patients x seeds")
    intervals = uncertainty_report(predictions, n_boot=n_boot, interval=interval)
    report.plot_confusion_matrices(usefulness, class_names, out_dir / report.PLOTS["confusion_matrices"])
    result = {
        "data": {"real": str(real) if isinstance(real, (str, Path)) else "<in-memory real>",
                 "class_names": class_names, "image_size": list(inputs.image_size_of(real_dd["test"], "real/test")),
                 "resolution": list(resolution),
                 "class_counts": {name: s.class_counts(len(class_names)) for name, s in
                                  (("real/train", train), ("real/validation", validation), ("real/test", test)) if s}},
        "settings": {"seeds": seeds, "protocols": {"TRTR": PROTOCOLS["TRTR"]}, "classifier": settings.to_dict()},
        "usefulness": usefulness,
        "uncertainty": intervals,
        "plots": {"confusion_matrices": report.PLOTS["confusion_matrices"]},
        "runtime_s": round(time.time() - started, 1),
    }
    write_json_atomic(out_dir / "report.json", result)
    write_text_atomic(out_dir / "report.md", markdown(result))
    return result


def markdown(result: dict) -> str:
    d, names = result["data"], result["data"]["class_names"]
    out = ["# Real-data ceiling (TRTR)", "",
           f"Real: `{d['real']}`, stored at {d['image_size'][0]}x{d['image_size'][1]}, classifier input "
           f"{d['resolution'][0]}x{d['resolution'][1]}; {len(result['settings']['seeds'])} classifier seeds; "
           f"{result['runtime_s'] / 60:.1f} min.", "",
           "| set | " + " | ".join(names) + " | total |", "|---|" + "---|" * (len(names) + 1)]
    for key, counts in d["class_counts"].items():
        out.append(f"| {key} | " + " | ".join(str(c) for c in counts) + f" | {sum(counts)} |")
    c = result["settings"]["classifier"]
    rule = (f"early stopping on the real validation balanced accuracy (every {c['eval_every']} steps, patience "
            f"{c['patience']}, at most {c['max_steps']} steps; best checkpoint kept)" if c["patience"] else
            f"a fixed {c['max_steps']} steps")
    out += ["", f"Training rule: {rule}.", ""] + report.training_lines(result["usefulness"])
    out += markdown_lines(result["uncertainty"])
    out += [f"![confusion matrices]({result['plots']['confusion_matrices']})", ""]
    return "\n".join(out)
