"""Honest uncertainty for usefulness figures: exam-level diagnoses, patient bootstrap, paired comparisons.

A figure such as "TSTR is 91% of TRTR" moves with two things: which patients happen to be
in the test split, and the classifier's training seed. Both are resampled here:

- **Exam level.** The 12 planes of an exam become one diagnosis per eye: the mean of the
  planes' class probabilities (`how="mean"`), or for each class its largest probability over
  the planes, renormalised (`how="max"`: one plane that shows the lesion is enough).
- **Bootstrap.** One replicate draws the test patients with replacement (a patient's scans
  stay together, as they are not independent) and classifier runs at random; the metric is
  computed on that sample. The interval is the 2.5-97.5 percentile range over replicates.
  `interval="run"` (the default) draws one run per replicate: the interval says what *one*
  classifier run would give, on another draw of patients. `interval="mean"` draws as many runs
  as there are, with replacement, and averages the metric over them: the interval of the
  reported mean over seeds, the one to read when two figures are compared. (With 3 seeds the
  resampling sees 2/3 of the seed variance: that interval is somewhat too narrow.)
- **Ratio** (e.g. TSTR / TRTR): numerator and denominator on the same patient draw, each with
  its own seed draw. **Paired difference** (synthetic set A vs B, same test, same seeds): the
  same patient draw and the same seed for both, so what they share cancels.

Inputs are per-run probability arrays `(N, C)` over one test set in one order, with the
scans' labels and patient (or exam) ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from medicraft_hf.evaluation import exam_rule

METRICS = ("accuracy", "balanced_accuracy")  # the headline ones: ratios and paired differences
INTERVALS = ("run", "mean")  # what an interval is about: one classifier run, or the mean over runs
METHOD = {"run": "percentile bootstrap over test patients x classifier seeds, one run per replicate (95%)",
          "mean": "percentile bootstrap over test patients x classifier seeds, the mean over seeds drawn "
                  "with replacement per replicate (95%)"}
# Levels of `uncertainty_report`: every test scan; the scans whose ground truth shows the label
# (a plane that misses the lesion keeps the eye's label but cannot show it; phantom rows with
# visibility flags only, see `data.phantom.plane_shows_label`); one diagnosis per exam, the mean
# of its planes' probabilities; one diagnosis per exam read out by a small model fit on the
# validation split (`learned_exam_probs`); one diagnosis per exam by the clinic's rule over its most
# lesioned planes, two thresholds fit on the validation split (`exam_rule`; decisions, so no AUC).
LEVELS = ("scan", "scan_shows_label", "exam", "exam_learned", "exam_rule")
DECISION_LEVELS = ("exam_rule",)
# Inverse regularisation of the exam read-out (multinomial logistic regression on 2 x C features).
EXAM_READOUT_C = 10.0


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


def exam_features(probs: np.ndarray, labels, exam_ids):
    """Per exam: log of the mean and of the largest probability of each class over its planes
    (one plane with fluid is enough for a clinic; the mean says how much of the eye looks so)."""
    mean, exam_labels, order = exam_predictions(probs, labels, exam_ids, "mean")
    where = {e: i for i, e in enumerate(order)}
    index = np.array([where[e] for e in exam_ids])
    probs = np.asarray(probs, dtype=np.float64)
    top = np.stack([probs[index == i].max(axis=0) for i in range(len(order))])
    return np.log(np.hstack([mean, top]) + 1e-4), exam_labels, order


def learned_exam_probs(validation_probs, validation_labels, validation_exams, test_probs, test_labels, test_exams,
                       num_classes: int):
    """Exam-level probabilities on the test exams from a logistic regression over `exam_features`,
    fit on the validation exams of the same classifier run (never on test)."""
    from sklearn.linear_model import LogisticRegression

    x_val, y_val, _ = exam_features(validation_probs, validation_labels, validation_exams)
    missing = sorted(set(range(num_classes)) - set(y_val.tolist()))
    if missing:
        raise ValueError(f"The validation split has no exam of class ids {missing}; the exam read-out needs every "
                         "class there.")
    readout = LogisticRegression(C=EXAM_READOUT_C, max_iter=5000).fit(x_val, y_val)
    x_test, y_test, order = exam_features(test_probs, test_labels, test_exams)
    return readout.predict_proba(x_test), y_test, order


def score(probs: np.ndarray, labels: np.ndarray, num_classes: int, auc: bool = False) -> dict[str, float]:
    """accuracy, balanced accuracy (mean recall over the classes present) and per-class recall;
    with `auc`, also the one-vs-rest ROC AUC per class (`auc_<c>`) and their mean over the
    classes present (`auc_ovr`, NaN when fewer than two classes are)."""
    probs = np.asarray(probs)
    predicted = probs.argmax(axis=1)
    labels = np.asarray(labels)
    hits = np.bincount(labels[predicted == labels], minlength=num_classes)
    present = np.bincount(labels, minlength=num_classes)
    recall = np.where(present > 0, hits / np.maximum(present, 1), np.nan)
    out = {"accuracy": float((predicted == labels).mean()), "balanced_accuracy": float(np.nanmean(recall))}
    out.update({f"recall_{c}": float(r) for c, r in enumerate(recall)})
    if auc:
        aucs = [_auc(labels == c, probs[:, c]) if 0 < present[c] < len(labels) else np.nan for c in range(num_classes)]
        out.update({f"auc_{c}": a for c, a in enumerate(aucs)})
        out["auc_ovr"] = float(np.nanmean(aucs)) if np.isfinite(aucs).sum() >= 2 else np.nan
    return out


def _auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank sum (ties count half), as sklearn's `roc_auc_score`, but
    without its per-call overhead: the bootstrap calls it thousands of times."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pos = int(positive.sum())
    n_neg = len(scores) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


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
    if not values.size:  # e.g. the recall of a class absent from the test set
        return {"mean": None, "low": None, "high": None, "n_boot": 0}
    lo, hi = np.percentile(values, [2.5, 97.5])
    return {"mean": float(values.mean()), "low": float(lo), "high": float(hi), "n_boot": int(values.size)}


def check_interval(interval: str) -> None:
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}.")


def _seed_draw(n_runs: int, interval: str, rng) -> np.ndarray:
    """Run indices for one replicate: one run, or n_runs runs with replacement."""
    return rng.integers(n_runs, size=1 if interval == "run" else n_runs)


def _mean_score(runs, picks, rows, labels, num_classes, auc=False) -> dict[str, float]:
    scores = [score(runs[i][rows], labels[rows], num_classes, auc=auc) for i in picks]
    return {m: float(np.mean([s[m] for s in scores])) for m in scores[0]}


def bootstrap_metrics(runs: Sequence[np.ndarray], labels, groups, metrics: Sequence[str] = METRICS, *,
                      n_boot: int = 1000, seed: int = 0, num_classes: int | None = None,
                      interval: str = "run") -> dict[str, dict]:
    """Each metric's mean and 95% interval over patient resamples x classifier seeds (one draw for all);
    `interval`: "run" or "mean" (module docstring)."""
    check_interval(interval)
    labels, rng = np.asarray(labels), np.random.default_rng(seed)
    num_classes = num_classes or np.asarray(runs[0]).shape[1]
    auc = any(m.startswith("auc") for m in metrics)
    values = [_mean_score(runs, _seed_draw(len(runs), interval, rng), rows, labels, num_classes, auc=auc)
              for rows in _draws(groups, n_boot, rng)]
    return {m: _interval(np.array([v[m] for v in values])) for m in metrics}


def bootstrap(runs: Sequence[np.ndarray], labels, groups, metric: str = "balanced_accuracy", *,
              n_boot: int = 1000, seed: int = 0, num_classes: int | None = None, interval: str = "run") -> dict:
    """The metric's mean and 95% interval over patient resamples x classifier seeds."""
    return bootstrap_metrics(runs, labels, groups, [metric], n_boot=n_boot, seed=seed, num_classes=num_classes,
                             interval=interval)[metric]


def _paired(a_runs, b_runs, labels, groups, metric, combine: Callable[[float, float], float], same_seed: bool,
            n_boot: int, seed: int, num_classes: int | None, interval: str = "run") -> dict:
    check_interval(interval)
    labels, rng = np.asarray(labels), np.random.default_rng(seed)
    num_classes = num_classes or np.asarray(a_runs[0]).shape[1]
    if same_seed and len(a_runs) != len(b_runs):
        raise ValueError(f"A paired comparison needs the same seeds on both sides; got {len(a_runs)} and "
                         f"{len(b_runs)} runs.")
    values = []
    for rows in _draws(groups, n_boot, rng):
        i = _seed_draw(len(a_runs), interval, rng)
        j = i if same_seed else _seed_draw(len(b_runs), interval, rng)
        a = _mean_score(a_runs, i, rows, labels, num_classes)[metric]
        b = _mean_score(b_runs, j, rows, labels, num_classes)[metric]
        values.append(combine(a, b))
    return _interval(np.array(values))


def ratio(numerator_runs, denominator_runs, labels, groups, metric: str = "balanced_accuracy", *,
          n_boot: int = 1000, seed: int = 0, num_classes: int | None = None, interval: str = "run") -> dict:
    """e.g. TSTR / TRTR, with its interval (same patients, independent seeds)."""
    return _paired(numerator_runs, denominator_runs, labels, groups, metric,
                   lambda a, b: a / b if b else np.nan, False, n_boot, seed, num_classes, interval)


def paired_difference(a_runs, b_runs, labels, groups, metric: str = "balanced_accuracy", *,
                      n_boot: int = 1000, seed: int = 0, num_classes: int | None = None,
                      interval: str = "run") -> dict:
    """A - B on the same test patients and the same classifier seeds (run i of A with run i of B)."""
    return _paired(a_runs, b_runs, labels, groups, metric, lambda a, b: a - b, True, n_boot, seed, num_classes,
                   interval)


# ---------------------------------------------------------------------------- report sections
def predictions_record(real_test, class_names, test_probs: dict, validation=None, validation_probs=None) -> dict:
    """What `predictions.json` keeps: the test scans and every run's probabilities on them (and,
    with a validation split, every run's validation probabilities, for the exam read-out)."""
    out = {"class_names": list(class_names), "image_ids": list(real_test.image_ids),
           "labels": real_test.labels.tolist(), "patient_ids": real_test.patient_ids,
           "exam_ids": real_test.exam_ids, "shows_label": real_test.shows_label, "runs": test_probs}
    if validation is not None and validation_probs and validation.exam_ids:
        out["validation"] = {"labels": validation.labels.tolist(), "exam_ids": validation.exam_ids,
                             "runs": validation_probs}
    return out


def prediction_levels(predictions: dict):
    """(level name, runs per protocol, labels, resampling groups) for scans, the scans that show
    their label (when every test scan's ground truth says) and, when known, exams."""
    labels = np.asarray(predictions["labels"])
    groups = predictions["patient_ids"] or predictions["image_ids"]
    runs = {p: [np.asarray(r) for r in rs] for p, rs in predictions["runs"].items() if rs and all(
        r is not None for r in rs)}
    yield "scan", runs, labels, groups
    shows = predictions.get("shows_label")
    if shows and all(v is not None for v in shows):
        keep = np.flatnonzero(np.asarray(shows, dtype=bool))
        yield ("scan_shows_label", {p: [r[keep] for r in rs] for p, rs in runs.items()}, labels[keep],
               [groups[i] for i in keep])
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
        val = predictions.get("validation")
        num_classes = len(predictions["class_names"])
        # (a validation split without some class cannot fit the read-out: that level is left out)
        if val and all(len(val["runs"].get(p) or []) == len(rs) for p, rs in runs.items()) and \
                len(set(val["labels"])) == num_classes:
            learned = {p: [learned_exam_probs(np.asarray(v), val["labels"], val["exam_ids"], r, labels, exams,
                                              num_classes)[0] for v, r in zip(val["runs"][p], rs)] for p, rs in runs.items()}
            yield "exam_learned", learned, exam_labels, [patient_of_exam[e] for e in (order or [])]
            if exam_rule.applies_to(predictions["class_names"]):
                ruled = {p: [exam_rule.rule_exam_probs(np.asarray(v), val["labels"], val["exam_ids"], r, labels, exams,
                                                       predictions["class_names"])[0]
                             for v, r in zip(val["runs"][p], rs)] for p, rs in runs.items()}
                yield "exam_rule", ruled, exam_labels, [patient_of_exam[e] for e in (order or [])]


def report_metrics(class_names) -> list[str]:
    """What `uncertainty_report` gives an interval for, per protocol and level."""
    return [*METRICS, "auc_ovr", *(f"recall_{c}" for c in range(len(class_names))),
            *(f"auc_{c}" for c in range(len(class_names)))]


def uncertainty_report(predictions: dict, *, n_boot: int = 1000, seed: int = 0, interval: str = "run") -> dict:
    """Intervals of every protocol at each level (`LEVELS`): accuracy, balanced accuracy, one-vs-rest
    AUC, per-class recall and AUC (`recall_<id>`, `auc_<id>`); TSTR/TRTR and TRSTR/TRTR ratios."""
    check_interval(interval)
    out = {"method": METHOD[interval], "interval": interval, "n_boot": n_boot,
           "class_names": list(predictions["class_names"])}
    num_classes = len(predictions["class_names"])
    metrics = report_metrics(predictions["class_names"])
    for level, runs, labels, groups in prediction_levels(predictions):
        section = {"n": int(len(labels)), "n_patients": len(set(groups))}
        level_metrics = [m for m in metrics if not (level in DECISION_LEVELS and m.startswith("auc"))]
        for protocol, rs in runs.items():
            section[protocol] = bootstrap_metrics(rs, labels, groups, level_metrics, n_boot=n_boot, seed=seed,
                                                  num_classes=num_classes, interval=interval)
        for protocol in ("TSTR", "TRSTR"):
            if protocol in runs and "TRTR" in runs:
                section[f"{protocol}/TRTR"] = {
                    m: ratio(runs[protocol], runs["TRTR"], labels, groups, m, n_boot=n_boot, seed=seed,
                             num_classes=num_classes, interval=interval) for m in METRICS}
        out[level] = section
    return out


def compare_predictions(ours: dict, theirs: dict, *, n_boot: int = 1000, seed: int = 0, interval: str = "run") -> dict:
    """This evaluation minus another one on the same test scans and seeds, per protocol and level."""
    if ours["image_ids"] != theirs["image_ids"] or ours["labels"] != theirs["labels"]:
        raise ValueError("The two evaluations were not run on the same real test scans in the same order; a "
                         "paired comparison needs the same real dataset and resolution.")
    check_interval(interval)
    out = {"method": "paired bootstrap: same test patients and same classifier seeds on both sides, "
                     + ("one run per replicate (95%)" if interval == "run" else "the mean over seeds (95%)"),
           "interval": interval, "n_boot": n_boot}
    num_classes = len(ours["class_names"])
    other = {level: runs for level, runs, _, _ in prediction_levels(theirs)}
    for level, a, labels, groups in prediction_levels(ours):
        b = other.get(level, {})
        out[level] = {p: {m: paired_difference(a[p], b[p], labels, groups, m, n_boot=n_boot, seed=seed,
                                               num_classes=num_classes, interval=interval) for m in METRICS}
                      for p in a if p in b and p != "TRTR"}
    return out


def markdown_lines(uncertainty: dict, comparison: dict | None = None) -> list[str]:
    def cell(x):
        return "—" if x is None or x.get("mean") is None else f"{x['mean']:.3f} [{x['low']:.3f}, {x['high']:.3f}]"

    names = uncertainty.get("class_names") or []
    out = ["## Uncertainty", "", f"{uncertainty['method']}; {uncertainty['n_boot']} replicates. Levels: every test "
           "scan; `scan_shows_label`, the scans whose ground truth shows their label (phantom visibility flags); "
           "`exam`, one diagnosis per exam, the mean of its planes' probabilities; `exam_learned`, one diagnosis "
           "per exam from a logistic regression over the per-class mean and maximum of its planes' probabilities, "
           "fit on the validation exams of each classifier run; `exam_rule`, one diagnosis per exam by the "
           "clinic's rule over its 3 most lesioned planes (lesion or not, melanoma or not, fluid or not), its two "
           "thresholds fit on the same validation exams (decisions: no AUC).", "",
           "| level | protocol | accuracy | balanced accuracy | AUC (one-vs-rest) |", "|---|---|---|---|---|"]
    levels = [lv for lv in LEVELS if lv in uncertainty]
    for level in levels:
        n = f"{level} (n={uncertainty[level]['n']})"
        for name, metrics in uncertainty[level].items():
            if isinstance(metrics, dict):
                out.append(f"| {n} | {name} | {cell(metrics['accuracy'])} | {cell(metrics['balanced_accuracy'])} | "
                           f"{cell(metrics.get('auc_ovr'))} |")
    if names:
        out += ["", "Per-class recall:", "", "| level | protocol | " + " | ".join(names) + " |",
                "|---|---|" + "---|" * len(names)]
        for level in levels:
            for name, metrics in uncertainty[level].items():
                if isinstance(metrics, dict) and "/" not in name:
                    out.append(f"| {level} | {name} | "
                               + " | ".join(cell(metrics.get(f"recall_{c}")) for c in range(len(names))) + " |")
    if comparison:
        out += ["", f"Paired comparison with `{comparison['other']}` (this minus that): {comparison['method']}.", "",
                "| level | protocol | accuracy difference | balanced accuracy difference |", "|---|---|---|---|"]
        for level in LEVELS:
            for name, metrics in comparison.get(level, {}).items():
                out.append(f"| {level} | {name} | {cell(metrics['accuracy'])} | "
                           f"{cell(metrics['balanced_accuracy'])} |")
    return out + [""]
