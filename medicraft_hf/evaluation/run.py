"""One evaluation end to end: usefulness, fidelity, privacy, anatomy -> report directory.

`medicraft evaluate` is a thin front over `run_evaluation`.
"""

from __future__ import annotations

import time
from pathlib import Path

from medicraft_hf.evaluation import inputs, report
from medicraft_hf.evaluation.classifier import ClassifierSettings, embed_and_predict
from medicraft_hf.evaluation.fidelity import fidelity_report
from medicraft_hf.evaluation.privacy import memorization_audit
from medicraft_hf.evaluation.protocols import PROTOCOLS, run_protocols
from medicraft_hf.evaluation.uncertainty import (
    check_interval,
    compare_predictions,
    predictions_record,
    uncertainty_report,
)
from medicraft_hf.io import write_json_atomic

DEFAULT_RESOLUTION = (64, 128)
MIN_SEEDS = 3
PREDICTIONS_FILE = "predictions.json"  # every run's test probabilities: intervals and paired comparisons


def class_fidelity(probs, labels, class_names) -> dict:
    """TRTS: how often the real-trained classifier (TRTR, first seed) assigns a generated scan
    to the class it was generated as, per requested class (does a generated melanoma look like one?)."""
    import numpy as np

    predicted = np.asarray(probs).argmax(axis=1)
    labels = np.asarray(labels)
    per_class = {name: (float((predicted[labels == c] == c).mean()) if (labels == c).any() else None)
                 for c, name in enumerate(class_names)}
    return {"overall": float((predicted == labels).mean()), "per_class": per_class, "n": int(len(labels)),
            "classifier": "TRTR, first seed"}


def _read_predictions(report_dir) -> dict:
    import json

    path = Path(report_dir) / PREDICTIONS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No {PREDICTIONS_FILE} in {report_dir}: compare with a report folder written by "
                                "`medicraft evaluate` (this version or later).")
    return json.loads(path.read_text())


def _save_synthetic_record(out_dir, synthetic_rows, synthetic_set, features, probs, train_features, anatomy,
                           class_names, log) -> dict | None:
    """The per-image record a later paired comparison of synthetic sets reads (None without seeds)."""
    import numpy as np

    from medicraft_hf.evaluation.paired_synthetic import save_synthetic_record

    seed_of = dict(zip(synthetic_rows["image_id"], synthetic_rows["seed"]))
    seeds = [seed_of[image_id] for image_id in synthetic_set.image_ids]
    if any(s is None for s in seeds):
        log("note: synthetic images without a seed column value: no per-image record for paired comparisons")
        return None
    ok = {r["image_id"]: r["verdict"] == "ok" for r in anatomy} if anatomy else {}
    return save_synthetic_record(out_dir, seeds=seeds, labels=synthetic_set.labels,
                                 predicted=np.asarray(probs).argmax(axis=1), features=features,
                                 anatomy_ok=[ok.get(image_id) for image_id in synthetic_set.image_ids],
                                 train_features=train_features, class_names=class_names)


def _compare_synthetic_sets(ours, other_dir, n_boot: int, log) -> dict:
    from medicraft_hf.evaluation.paired_synthetic import compare_synthetic, load_synthetic_record

    if ours is None:
        return {"note": "this synthetic set has no per-image seeds: not paired image by image"}
    try:
        theirs = load_synthetic_record(other_dir)
    except FileNotFoundError as err:
        log(f"note: {err}")
        return {"note": str(err)}
    log("paired comparison of the two synthetic sets, image by image")
    return compare_synthetic(ours, theirs, n_boot=n_boot)


def anatomy_results(dataset, class_names) -> list[dict]:
    """The anatomy check on every image of `dataset`, at its stored size."""
    from medicraft_hf.evaluation.anatomy import check_images

    rows = dataset.select_columns(["image_id", "image", "label"])
    return check_images((r["image_id"], r["image"], class_names[r["label"]]) for r in rows)


def run_evaluation(
    real,
    synthetic,
    out_dir,
    *,
    seeds=(0, 1, 2),
    resolution=DEFAULT_RESOLUTION,
    settings: ClassifierSettings | None = None,
    max_train_images: int | None = None,
    anatomy: bool = True,
    compare_to=None,
    n_boot: int = 1000,
    interval: str = "run",
    protocols=tuple(PROTOCOLS),
    log=print,
) -> dict:
    """Evaluate `synthetic` against `real` and write report.{json,md} and plots to `out_dir`.

    `real` / `synthetic`: a local dataset folder, a Hub id, or a `DatasetDict`; `synthetic=None`
    runs the real-data ceiling alone (TRTR, `evaluation.ceiling`). `real`
    needs a 'train' and a patient-held-out 'test' split; every synthetic split is used.
    Finished classifier runs are kept in `out_dir/runs/`, so a rerun resumes. Intervals come
    from a bootstrap over test patients x seeds (`n_boot` replicates; `interval`: "run" or "mean",
    see `evaluation.uncertainty`); `compare_to` (another
    report folder, same real test split and seeds) adds a paired comparison with it.
    """
    started = time.time()
    settings = settings or ClassifierSettings()
    seeds = list(seeds)
    check_interval(interval)  # before any training
    if synthetic is None:  # the real-data ceiling only
        from medicraft_hf.evaluation.ceiling import run_ceiling

        return run_ceiling(real, out_dir, seeds=seeds, resolution=resolution, settings=settings, n_boot=n_boot,
                           interval=interval, log=log)
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or "TRTR" not in protocols:
        raise ValueError(f"protocols must include TRTR (the reference) and be among {list(PROTOCOLS)}; got {list(protocols)}.")
    if len(seeds) < 1 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}.")
    if len(seeds) < MIN_SEEDS:
        log(f"warning: {len(seeds)} seed(s); report mean ± std over at least {MIN_SEEDS} for a paper.")
    out_dir = Path(out_dir)
    real_name = str(real) if isinstance(real, (str, Path)) else "<in-memory real>"
    synthetic_name = str(synthetic) if isinstance(synthetic, (str, Path)) else "<in-memory synthetic>"

    real_dd = inputs.load_side(real, "real")
    synthetic_dd = inputs.load_side(synthetic, "synthetic")
    class_names = inputs.check_pair(real_dd, synthetic_dd)
    image_size = inputs.check_same_size(real_dd, synthetic_dd)
    resolution = tuple(resolution)

    log(f"decoding images at {resolution[0]}x{resolution[1]}")
    real_train = inputs.stratified_cap(inputs.to_image_set(real_dd["train"], resolution, "real/train"), max_train_images)
    synthetic_rows = inputs.synthetic_rows(synthetic_dd)
    synthetic_set = inputs.stratified_cap(inputs.to_image_set(synthetic_rows, resolution, "synthetic"), max_train_images)
    real_test = inputs.to_image_set(real_dd["test"], resolution, "real/test")
    validation = None
    if settings.patience > 0:
        if "validation" not in real_dd:
            log("warning: the real data has no 'validation' split: every protocol trains the fixed max_steps")
        else:
            validation = inputs.to_image_set(real_dd["validation"], resolution, "real/validation")
    held_out = inputs.to_image_set(inputs.held_out_rows(real_dd), resolution, "real/held-out")

    other_predictions = None
    if compare_to is not None:  # a missing or foreign report fails now, not after training
        other_predictions = _read_predictions(compare_to)
    usefulness, model, test_probs, validation_probs = run_protocols(
        real_train, synthetic_set, real_test, class_names, resolution, settings, seeds=seeds,
        runs_dir=out_dir / "runs", log=log, validation=validation, protocols=protocols,
    )  # fmt: skip

    log("fidelity and memorization audit in the TRTR classifier's feature space")
    train_f, _ = embed_and_predict(model, real_train)
    syn_f, syn_probs = embed_and_predict(model, synthetic_set)
    trts = class_fidelity(syn_probs, synthetic_set.labels, class_names)
    held_f, _ = embed_and_predict(model, held_out)
    fidelity = fidelity_report(train_f, real_train.labels, syn_f, synthetic_set.labels, class_names, held_f, held_out.labels)
    privacy = memorization_audit(real_train, train_f, held_out, held_f, synthetic_set, syn_f)

    anatomy_report = None
    if anatomy:
        from medicraft_hf.evaluation.anatomy import ANATOMY_VERDICTS, summarize

        log("anatomy check on synthetic and real test images")
        per_image = {"synthetic": anatomy_results(synthetic_rows, class_names),
                     "real_test": anatomy_results(real_dd["test"], class_names)}  # fmt: skip
        write_json_atomic(out_dir / "anatomy.json", per_image)
        anatomy_report = {"verdicts": list(ANATOMY_VERDICTS), **{k: summarize(v) for k, v in per_image.items()}}

    out_dir.mkdir(parents=True, exist_ok=True)
    synthetic_record = _save_synthetic_record(out_dir, synthetic_rows, synthetic_set, syn_f, syn_probs, train_f,
                                              anatomy_report and per_image["synthetic"], class_names, log)
    predictions = predictions_record(real_test, class_names, test_probs, validation, validation_probs)
    write_json_atomic(out_dir / PREDICTIONS_FILE, predictions)
    log(f"intervals: {n_boot} bootstrap replicates over test patients x seeds")
    intervals = uncertainty_report(predictions, n_boot=n_boot, interval=interval)
    comparison = None
    if other_predictions is not None:
        comparison = {"other": str(compare_to), **compare_predictions(predictions, other_predictions, n_boot=n_boot,
                                                                         interval=interval)}
        comparison["synthetic"] = _compare_synthetic_sets(synthetic_record, compare_to, n_boot, log)
    report.plot_confusion_matrices(usefulness, class_names, out_dir / report.PLOTS["confusion_matrices"])
    report.plot_samples(real_train, synthetic_set, class_names, out_dir / report.PLOTS["samples"])
    report.plot_embedding(
        train_f, real_train.labels, syn_f, synthetic_set.labels, class_names, out_dir / report.PLOTS["embedding"]
    )
    report.plot_nearest_neighbours(privacy, synthetic_set, real_train, out_dir / report.PLOTS["nearest_neighbours"])
    report.plot_privacy_ssim(privacy, out_dir / report.PLOTS["privacy_ssim"])
    # Every synthetic image's nearest training image, for reviewers; the report keeps the top.
    write_json_atomic(out_dir / "privacy_pairs.json", privacy["pairs"])

    privacy_short = {k: v for k, v in privacy.items() if k not in ("pairs", "held_out_nearest_ssim")}
    privacy_short["top_pairs"] = privacy["pairs"][:20]
    result = {
        "summary": report.summary_of(usefulness, fidelity, privacy, anatomy_report),
        "data": {
            "real": real_name,
            "synthetic": synthetic_name,
            "class_names": class_names,
            "image_size": list(image_size),
            "resolution": list(resolution),
            "class_counts": {
                "real/train (used)": real_train.class_counts(len(class_names)),
                "real/test": real_test.class_counts(len(class_names)),
                "real/held-out (test+validation)": held_out.class_counts(len(class_names)),
                "synthetic (used)": synthetic_set.class_counts(len(class_names)),
            },
        },
        "settings": {
            "seeds": seeds,
            "protocols": {p: PROTOCOLS[p] for p in protocols},
            "classifier": settings.to_dict(),
            "max_train_images": max_train_images,
        },
        "usefulness": usefulness,
        "uncertainty": intervals,
        "trts": trts,
        "comparison": comparison,
        "fidelity": fidelity,
        "privacy": privacy_short,
        "anatomy": anatomy_report,
        "plots": dict(report.PLOTS),
        "runtime_s": round(time.time() - started, 1),
    }
    report.write_report(result, out_dir)
    log(report.summary_table(result))
    return result
