"""The exam read-out a clinic uses: is there a lesion, which kind, and does it carry fluid.

An exam's 12 radial planes all pass through the fovea, so an eccentric nevus shows in only some
of them; the others look healthy while keeping the eye's label. Averaging the planes' class
probabilities therefore calls such an eye healthy, and a logistic regression over per-class
means and maxima (`uncertainty.learned_exam_probs`, 36 weights) overfits the 40 validation
exams it is fit on. This rule reads the planes that show the most lesion and fits two numbers:

1. per plane, its lesion probability is 1 - p(healthy); the exam's `TOP_PLANES` planes with the
   highest one are its lesion planes, and their mean lesion probability below `t_lesion` means
   healthy;
2. otherwise melanoma when its mean probability over the lesion planes beats nevus's and
   nevus_fluid's;
3. otherwise nevus_fluid when one lesion plane's fluid share, p(nevus_fluid) / (p(nevus) +
   p(nevus_fluid)), reaches `t_fluid` (one plane through the fluid is enough), else nevus.

`t_lesion` and `t_fluid` are fit on the validation exams of the same classifier run (never on
test), one after the other, each the middle of the thresholds that give the best balanced
accuracy on its question. Chosen on a tuning cohort of the benchmark-v1 preset with another
seed (docs/benchmark.md, session 13), never on benchmark-v1 itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The rule reads these classes by name; a dataset without all four gets no rule level.
RULE_CLASSES = ("healthy", "nevus", "nevus_fluid", "melanoma")
TOP_PLANES = 3  # lesion planes per exam (an eccentric lesion shows in at least 2 of 12)
# How the lesion planes' fluid shares make the exam's: "max" (one plane through the fluid is
# enough), "second" (two planes), "mean". `benchmarks/tune_exam_rule.py` compares them.
FLUID_READS = ("max", "second", "mean")
FLUID_READ = "max"


@dataclass(frozen=True)
class ExamEvidence:
    """Per exam: lesion probability of its lesion planes, whether melanoma leads there, the largest
    fluid share among them, and the exam's label."""

    lesion: np.ndarray
    melanoma: np.ndarray
    fluid: np.ndarray
    labels: np.ndarray
    order: list


def applies_to(class_names: Sequence[str]) -> bool:
    return set(RULE_CLASSES) <= set(class_names)


def exam_evidence(probs, labels, exam_ids, class_names, top: int = TOP_PLANES,
                  fluid_read: str = FLUID_READ) -> ExamEvidence:
    """The rule's three numbers per exam (exams in order of first appearance)."""
    if fluid_read not in FLUID_READS:
        raise ValueError(f"Unknown fluid read {fluid_read!r}: use one of {FLUID_READS}.")
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    h, n, f, m = (list(class_names).index(c) for c in RULE_CLASSES)
    order = list(dict.fromkeys(exam_ids))
    where = {e: i for i, e in enumerate(order)}
    index = np.array([where[e] for e in exam_ids])
    lesion, melanoma, fluid, exam_labels = (np.zeros(len(order)) for _ in range(4))
    for i in range(len(order)):
        rows = index == i
        p = probs[rows]
        plane_lesion = 1.0 - p[:, h]
        lesion_planes = np.argsort(-plane_lesion, kind="stable")[:top]
        means = p[lesion_planes].mean(axis=0)
        lesion[i] = plane_lesion[lesion_planes].mean()
        melanoma[i] = float(means[m] > max(means[n], means[f]))
        shares = np.sort(p[lesion_planes, f] / np.maximum(p[lesion_planes, n] + p[lesion_planes, f], 1e-12))[::-1]
        fluid[i] = {"max": shares[0], "second": shares[min(1, len(shares) - 1)], "mean": shares.mean()}[fluid_read]
        exam_labels[i] = labels[rows][0]
    return ExamEvidence(lesion, melanoma.astype(bool), fluid, exam_labels.astype(int), order)


def decide(evidence: ExamEvidence, t_lesion: float, t_fluid: float, class_names) -> np.ndarray:
    """Class ids per exam."""
    h, n, f, m = (list(class_names).index(c) for c in RULE_CLASSES)
    return np.where(evidence.lesion < t_lesion, h,
                    np.where(evidence.melanoma, m, np.where(evidence.fluid >= t_fluid, f, n)))


def best_threshold(values: np.ndarray, positive: np.ndarray) -> float:
    """The threshold (`values >= t` says positive) with the best balanced accuracy of the two
    groups; ties: the middle one of the tied candidates. Candidates lie midway between sorted
    distinct values, and beyond both ends."""
    values, positive = np.asarray(values, dtype=np.float64), np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        raise ValueError("A threshold needs exams on both sides of the question (positive and negative).")
    v = np.unique(values)
    candidates = np.concatenate([[v[0] - 1.0], (v[:-1] + v[1:]) / 2, [v[-1] + 1.0]])
    scores = np.array([(np.mean(values[positive] >= t) + np.mean(values[~positive] < t)) / 2 for t in candidates])
    tied = candidates[np.isclose(scores, scores.max())]
    return float(tied[len(tied) // 2])


def fit(evidence: ExamEvidence, class_names) -> tuple[float, float]:
    """(t_lesion, t_fluid) from validation exams: first healthy against any lesion, then, among the
    nevus and nevus_fluid exams that pass it and are not read as melanoma, fluid against none."""
    h, n, f, _ = (list(class_names).index(c) for c in RULE_CLASSES)
    missing = [c for c, i in zip(RULE_CLASSES, (h, n, f)) if not (evidence.labels == i).any()]
    if missing:
        raise ValueError(f"The validation split has no exam of {missing}; the exam rule needs each of them.")
    t_lesion = best_threshold(evidence.lesion, evidence.labels != h)
    asked = (evidence.lesion >= t_lesion) & ~evidence.melanoma & np.isin(evidence.labels, [n, f])
    fluid_positive = evidence.labels[asked] == f
    if fluid_positive.all() or not fluid_positive.any():  # too few exams reach the fluid question
        asked = np.isin(evidence.labels, [n, f])
        fluid_positive = evidence.labels[asked] == f
    return t_lesion, best_threshold(evidence.fluid[asked], fluid_positive)


def rule_exam_probs(validation_probs, validation_labels, validation_exams, test_probs, test_labels, test_exams,
                    class_names, fluid_read: str = FLUID_READ):
    """One-hot exam diagnoses of the test exams (the rule gives decisions, not scores), their labels
    and order; the thresholds fit on the validation exams of the same classifier run."""
    t_lesion, t_fluid = fit(exam_evidence(validation_probs, validation_labels, validation_exams, class_names,
                                          fluid_read=fluid_read), class_names)
    test = exam_evidence(test_probs, test_labels, test_exams, class_names, fluid_read=fluid_read)
    return np.eye(len(class_names))[decide(test, t_lesion, t_fluid, class_names)], test.labels, test.order
