"""Usefulness: train a classifier on real, synthetic, or both; always test on real.

TRTR  train real       / test real   (the reference)
TSTR  train synthetic  / test real   (is synthetic data a substitute?)
TRSTR train real+synth / test real   (is it a useful augmentation?)

The test set is the real, patient-held-out test split. Each protocol runs once per seed
and is reported as mean ± std (sample std, ddof=1). With a real validation split and
`settings.patience` > 0, every protocol (TSTR too) stops early on the real validation
balanced accuracy and keeps its best checkpoint: one budget rule for all. Each finished run is written to
`runs_dir` so an interrupted evaluation resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix

from medicraft_hf.evaluation.classifier import ClassifierSettings, embed_and_predict, train_classifier
from medicraft_hf.evaluation.inputs import ImageSet
from medicraft_hf.io import atomic_path, write_json_atomic

PROTOCOLS: dict[str, str] = {
    "TRTR": "train real, test real",
    "TSTR": "train synthetic, test real",
    "TRSTR": "train real + synthetic, test real",
}
METRIC_PATH = Path(__file__).parent / "metrics" / "oct_classification.py"


def load_metric():
    """Our `evaluate` module, loaded by absolute path (works offline)."""
    import evaluate

    return evaluate.load(str(METRIC_PATH))


def training_set(protocol: str, real_train: ImageSet, synthetic: ImageSet) -> ImageSet:
    if protocol == "TRTR":
        return real_train
    if protocol == "TSTR":
        return synthetic
    if protocol == "TRSTR":
        return ImageSet.concat([real_train, synthetic], name="real/train+synthetic")
    raise ValueError(f"Unknown protocol {protocol!r}; choose from {list(PROTOCOLS)}.")


def _fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, ImageSet):
            h.update(part.images.tobytes())
            h.update(part.labels.tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def summarize(values: list[float | None]) -> dict:
    """mean ± sample std over seeds (std is None with one seed or undefined values)."""
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        "n": len(values),
    }


def run_protocols(
    real_train: ImageSet,
    synthetic: ImageSet,
    real_test: ImageSet,
    class_names,
    resolution,
    settings: ClassifierSettings,
    seeds=(0, 1, 2),
    runs_dir=None,
    protocols=tuple(PROTOCOLS),
    keep_model=("TRTR", 0),
    log=print,
    validation: ImageSet | None = None,
):
    """Run every (protocol, seed); return (results, the model named by `keep_model`, each
    protocol's per-seed test probabilities `(N, C)` for `evaluation.uncertainty`, and the same
    on `validation` (None without one): they fit the exam-level read-out there).

    The kept model (TRTR, first seed) defines the feature space of fidelity and privacy. Every
    run's model is saved in `runs_dir` (a tiny ViT, safetensors).
    """
    metric = load_metric()
    results, kept, test_probs, validation_probs = {}, None, {}, {}
    for protocol in protocols:
        train = training_set(protocol, real_train, synthetic)
        runs = []
        for seed in seeds:
            key = _fingerprint(protocol, seed, settings.to_dict(), list(resolution), train, real_test,
                               *([validation] if validation is not None and settings.patience > 0 else []))
            cached = Path(runs_dir) / f"{protocol}-seed{seed}.json" if runs_dir else None
            model_dir = Path(runs_dir) / f"{protocol}-seed{seed}-model" if runs_dir else None
            want_model = keep_model is not None and (protocol, seed) == tuple(keep_model)
            has_model = bool(model_dir) and (model_dir / "config.json").exists()
            if cached and cached.exists() and (not want_model or has_model):
                run = json.loads(cached.read_text())
                stale = validation is not None and "validation_probs" not in run and not has_model
                if run.get("fingerprint") == key and "test_probs" in run and not stale:  # (older runs kept less)
                    log(f"[{protocol} seed {seed}] reused {cached}")
                    model = None
                    if want_model or (validation is not None and "validation_probs" not in run):
                        from transformers import ViTForImageClassification

                        model = ViTForImageClassification.from_pretrained(model_dir, use_safetensors=True).eval()
                    if validation is not None and "validation_probs" not in run:
                        run["validation_probs"] = np.round(embed_and_predict(model, validation)[1], 6).tolist()
                        write_json_atomic(cached, run)
                    kept = model if want_model else kept
                    runs.append(run)
                    continue
            log(f"[{protocol} seed {seed}] training on {len(train)} images ({PROTOCOLS[protocol]})")
            record = []
            model = train_classifier(train, class_names, resolution, settings, seed, validation=validation,
                                     record=record)
            _, probs = embed_and_predict(model, real_test)
            metrics = metric.compute(
                predictions=probs.tolist(), references=real_test.labels.tolist(), class_names=list(class_names)
            )
            run = {
                "protocol": protocol,
                "seed": seed,
                "n_train": len(train),
                "n_test": len(real_test),
                "metrics": metrics,
                "confusion_matrix": confusion_matrix(
                    real_test.labels, probs.argmax(1), labels=list(range(len(class_names)))
                ).tolist(),
                "training": record[0].to_dict(),
                "fingerprint": key,
                "test_probs": np.round(probs, 6).tolist(),
            }
            if validation is not None:
                run["validation_probs"] = np.round(embed_and_predict(model, validation)[1], 6).tolist()
            if want_model:
                kept = model
            if model_dir:
                with atomic_path(model_dir) as tmp:
                    model.save_pretrained(tmp)  # safetensors
            if cached:
                write_json_atomic(cached, run)
            log(f"[{protocol} seed {seed}] accuracy {metrics['accuracy']:.3f}, balanced {metrics['balanced_accuracy']:.3f} "
                f"({record[0].steps} steps, best validation step {record[0].best_step})")
            runs.append(run)
        names = list(runs[0]["metrics"])
        results[protocol] = {
            "description": PROTOCOLS[protocol],
            "n_train": len(train),
            "n_test": len(real_test),
            "seeds": list(seeds),
            "metrics": {name: summarize([r["metrics"][name] for r in runs]) for name in names},
            "confusion_matrix": np.sum([r["confusion_matrix"] for r in runs], axis=0).tolist(),  # over seeds
            "runs": [{k: r.get(k) for k in ("seed", "metrics", "confusion_matrix", "training")} for r in runs],
        }
        test_probs[protocol] = [r.get("test_probs") for r in runs]
        if validation is not None:
            validation_probs[protocol] = [r["validation_probs"] for r in runs]
    return results, kept, test_probs, (validation_probs if validation is not None else None)
