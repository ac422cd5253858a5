"""Honest uncertainty for usefulness figures: exam-level diagnoses, patient bootstrap, paired comparisons.

A figure such as "TSTR is 91% of TRTR" moves with two things: which patients happen to be
in the test split, and the classifier's training seed. Both are resampled here:

- **Exam level.** The 12 planes of an exam become one diagnosis per eye: the mean of the
  planes' class probabilities (`how="mean"`), or for each class its largest probability over
  the planes, renormalised (`how="max"`: one plane that shows the lesion is enough).
- **Bootstrap.** One replicate draws the test patients with replacement (a patient's scans
  stay together, as they are not independent) and one classifier seed per protocol run at
  random; the metric is computed on that sample. The interval is the 2.5-97.5 percentile
  range over replicates.
- **Ratio** (e.g. TSTR / TRTR): numerator and denominator on the same patient draw, each with
  its own seed draw. **Paired difference** (synthetic set A vs B, same test, same seeds): the
  same patient draw and the same seed for both, so what they share cancels.

Inputs are per-run probability arrays `(N, C)` over one test set in one order, with the
scans' labels and patient (or exam) ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

METRICS = ("accuracy", "balanced_accuracy")


def exam_predictions(probs: np.ndarray, labels: Sequence[int], exam_ids: Sequence[str], how: str = "mean"):
    """Per-exam probabilities, labels and ids (exams in order of first appearance)."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    order = list(dict.fromkeys(exam_ids))
    where = {e: i for i, e in enumerate(order)}
    index = np.array([where[e] for e in exam_ids])
    out = np.zeros((len(order), probs.shape[1]))
    exam_labels = np.full(len(order), -1)
    for i in range(len(order)):
        rows = index == i
        seen = set(labels[rows].tolist())
        if len(seen) != 1:
            raise ValueError(f"Exam {order[i]!r} has scans of several labels {sorted(seen)}; an exam has one diagnosis.")
        exam_labels[i] = labels[rows][0]
        if how == "mean":
            out[i] = probs[rows].mean(axis=0)
        elif how == "max":
            top = probs[rows].max(axis=0)
            out[i] = top / top.sum()
        else:
            raise ValueError(f"how must be 'mean' or 'max', got {how!r}.")
    return out, exam_labels, order


def score(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, float]:
    """accuracy, balanced accuracy (mean recall over the classes present) and per-class recall."""
    predicted = np.asarray(probs).argmax(axis=1)
    labels = np.asarray(labels)
    hits = np.bincount(labels[predicted == labels], minlength=num_classes)
    present = np.bincount(labels, minlength=num_classes)
    recall = np.where(present > 0, hits / np.maximum(present, 1), np.nan)
    out = {"accuracy": float((predicted == labels).mean()), "balanced_accuracy": float(np.nanmean(recall))}
    out.update({f"recall_{c}": float(r) for c, r in enumerate(recall)})
    return out


def _patient_index(groups: Sequence[str]) -> list[np.ndarray]:
    groups = np.asarray(groups)
    return [np.flatnonzero(groups == g) for g in dict.fromkeys(groups.tolist())]


def _draws(groups, n_boot: int, rng) -> list[np.ndarray]:
    """Row indices of `n_boot` patient-level resamples."""
    patients = _patient_index(groups)
    return [np.concatenate([patients[p] for p in rng.integers(0, len(patients), len(patients))])
            for _ in range(n_boot)]


def _interval(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    lo, hi = np.percentile(values, [2.5, 97.5])
    return {"mean": float(values.mean()), "low": float(lo), "high": float(hi), "n_boot": int(values.size)}


def bootstrap(runs: Sequence[np.ndarray], labels, groups, metric: str = "balanced_accuracy", *,
              n_boot: int = 1000, seed: int = 0, num_classes: int | None = None) -> dict:
    """The metric's mean and 95% interval over patient resamples x classifier seeds."""
    labels, rng = np.asarray(labels), np.random.default_rng(seed)
    num_classes = num_classes or np.asarray(runs[0]).shape[1]
    values = [score(runs[rng.integers(len(runs))][rows], labels[rows], num_classes)[metric]
              for rows in _draws(groups, n_boot, rng)]
    return _interval(np.array(values))


def _paired(a_runs, b_runs, labels, groups, metric, combine: Callable[[float, float], float], same_seed: bool,
            n_boot: int, seed: int, num_classes: int | None) -> dict:
    labels, rng = np.asarray(labels), np.random.default_rng(seed)
    num_classes = num_classes or np.asarray(a_runs[0]).shape[1]
    if same_seed and len(a_runs) != len(b_runs):
        raise ValueError(f"A paired comparison needs the same seeds on both sides; got {len(a_runs)} and "
                         f"{len(b_runs)} runs.")
    values = []
    for rows in _draws(groups, n_boot, rng):
        i = rng.integers(len(a_runs))
        j = i if same_seed else rng.integers(len(b_runs))
        a = score(a_runs[i][rows], labels[rows], num_classes)[metric]
        b = score(b_runs[j][rows], labels[rows], num_classes)[metric]
        values.append(combine(a, b))
    return _interval(np.array(values))


def ratio(numerator_runs, denominator_runs, labels, groups, metric: str = "balanced_accuracy", *,
          n_boot: int = 1000, seed: int = 0, num_classes: int | None = None) -> dict:
    """e.g. TSTR / TRTR, with its interval (same patients, independent seeds)."""
    return _paired(numerator_runs, denominator_runs, labels, groups, metric,
                   lambda a, b: a / b if b else np.nan, False, n_boot, seed, num_classes)


def paired_difference(a_runs, b_runs, labels, groups, metric: str = "balanced_accuracy", *,
                      n_boot: int = 1000, seed: int = 0, num_classes: int | None = None) -> dict:
    """A - B on the same test patients and the same classifier seeds (run i of A with run i of B)."""
    return _paired(a_runs, b_runs, labels, groups, metric, lambda a, b: a - b, True, n_boot, seed, num_classes)


# ---------------------------------------------------------------------------- report sections
def predictions_record(real_test, class_names, test_probs: dict) -> dict:
    """What `predictions.json` keeps: the test scans and every run's probabilities on them."""
    return {"class_names": list(class_names), "image_ids": list(real_test.image_ids),
            "labels": real_test.labels.tolist(), "patient_ids": real_test.patient_ids,
            "exam_ids": real_test.exam_ids, "runs": test_probs}


def _levels(predictions: dict):
    """(level name, runs per protocol, labels, resampling groups) for scans and, when known, exams."""
    labels = np.asarray(predictions["labels"])
    groups = predictions["patient_ids"] or predictions["image_ids"]
    runs = {p: [np.asarray(r) for r in rs] for p, rs in predictions["runs"].items() if rs and all(
        r is not None for r in rs)}
    yield "scan", runs, labels, groups
    exams = predictions.get("exam_ids")
    if exams:
        exam_runs, exam_labels, order = {}, None, None
        for protocol, rs in runs.items():
            exam_runs[protocol] = []
            for r in rs:
                probs, exam_labels, order = exam_predictions(r, labels, exams)
                exam_runs[protocol].append(probs)
        patient_of_exam = dict(zip(exams, groups))
        yield "exam", exam_runs, exam_labels, [patient_of_exam[e] for e in (order or [])]


def uncertainty_report(predictions: dict, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Intervals of every protocol at scan and exam level, and TSTR/TRTR, TRSTR/TRTR ratios."""
    out = {"method": "percentile bootstrap over test patients x classifier seeds (95%)", "n_boot": n_boot}
    num_classes = len(predictions["class_names"])
    for level, runs, labels, groups in _levels(predictions):
        section = {"n": int(len(labels)), "n_patients": len(set(groups))}
        for protocol, rs in runs.items():
            section[protocol] = {m: bootstrap(rs, labels, groups, m, n_boot=n_boot, seed=seed, num_classes=num_classes)
                                 for m in METRICS}
        for protocol in ("TSTR", "TRSTR"):
            if protocol in runs and "TRTR" in runs:
                section[f"{protocol}/TRTR"] = {
                    m: ratio(runs[protocol], runs["TRTR"], labels, groups, m, n_boot=n_boot, seed=seed,
                             num_classes=num_classes) for m in METRICS}
        out[level] = section
    return out


def compare_predictions(ours: dict, theirs: dict, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """This evaluation minus another one on the same test scans and seeds, per protocol and level."""
    if ours["image_ids"] != theirs["image_ids"] or ours["labels"] != theirs["labels"]:
        raise ValueError("The two evaluations were not run on the same real test scans in the same order; a "
                         "paired comparison needs the same real dataset and resolution.")
    out = {"method": "paired bootstrap: same test patients and same classifier seed on both sides (95%)",
           "n_boot": n_boot}
    num_classes = len(ours["class_names"])
    for (level, a, labels, groups), (_, b, _, _) in zip(_levels(ours), _levels(theirs)):
        out[level] = {p: {m: paired_difference(a[p], b[p], labels, groups, m, n_boot=n_boot, seed=seed,
                                               num_classes=num_classes) for m in METRICS}
                      for p in a if p in b and p != "TRTR"}
    return out


def markdown_lines(uncertainty: dict, comparison: dict | None = None) -> list[str]:
    def cell(x):
        return f"{x['mean']:.3f} [{x['low']:.3f}, {x['high']:.3f}]"

    out = ["## Uncertainty", "", f"{uncertainty['method']}; {uncertainty['n_boot']} replicates. Exam level: the "
           "mean of an exam's plane probabilities.", "",
           "| level | protocol | accuracy | balanced accuracy |", "|---|---|---|---|"]
    for level in ("scan", "exam"):
        for name, metrics in uncertainty.get(level, {}).items():
            if isinstance(metrics, dict):
                out.append(f"| {level} | {name} | {cell(metrics['accuracy'])} | {cell(metrics['balanced_accuracy'])} |")
    if comparison:
        out += ["", f"Paired comparison with `{comparison['other']}` (this minus that): {comparison['method']}.", "",
                "| level | protocol | accuracy difference | balanced accuracy difference |", "|---|---|---|---|"]
        for level in ("scan", "exam"):
            for name, metrics in comparison.get(level, {}).items():
                out.append(f"| {level} | {name} | {cell(metrics['accuracy'])} | "
                           f"{cell(metrics['balanced_accuracy'])} |")
    return out + [""]
