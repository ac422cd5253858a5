"""The `evaluate` metric module and the fidelity statistics, checked against known values."""

import evaluate
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score, roc_auc_score

from medicraft_hf.evaluation.fidelity import (
    fidelity_metrics,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
)
from medicraft_hf.evaluation.protocols import METRIC_PATH, load_metric, summarize

NAMES = ["healthy", "nevus", "nevus_fluid", "melanoma"]


def test_metric_loads_offline_by_path_and_matches_sklearn():
    metric = evaluate.load(str(METRIC_PATH))
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=80)
    refs = rng.integers(0, 4, size=80)
    preds = probs.argmax(1)
    out = metric.compute(predictions=probs.tolist(), references=refs.tolist(), class_names=NAMES)

    assert out["accuracy"] == pytest.approx(accuracy_score(refs, preds))
    assert out["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(refs, preds))
    assert out["macro_f1"] == pytest.approx(f1_score(refs, preds, average="macro"))
    for name, recall in zip(NAMES, recall_score(refs, preds, average=None)):
        assert out[f"recall_{name}"] == pytest.approx(recall)
    assert out["auc_ovr"] == pytest.approx(roc_auc_score(refs, probs, multi_class="ovr", average="macro"))
    assert out["auc_melanoma"] == pytest.approx(roc_auc_score(refs == 3, probs[:, 3]))


def test_metric_hand_computed_example_and_batches():
    metric = load_metric()
    # true 0 0 1 1, predicted 0 1 1 1: accuracy 3/4, recalls (1/2, 1), balanced 3/4.
    probs = [[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]]
    metric.add_batch(predictions=probs[:2], references=[0, 0])
    metric.add_batch(predictions=probs[2:], references=[1, 1])
    out = metric.compute(class_names=["a", "b"])
    assert out["accuracy"] == 0.75 and out["balanced_accuracy"] == 0.75
    assert out["recall_a"] == 0.5 and out["recall_b"] == 1.0
    assert out["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    # Scores of class b: positives 0.8, 0.7 above negatives 0.1, 0.6 -> AUC 1.
    assert out["auc_b"] == 1.0 and out["auc_ovr"] == 1.0


def test_metric_integer_predictions_have_no_auc_and_logits_are_refused():
    metric = load_metric()
    out = metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])
    assert out["accuracy"] == pytest.approx(2 / 3) and out["auc_ovr"] is None
    with pytest.raises(ValueError, match="softmax"):
        metric.compute(predictions=[[2.0, -1.0], [0.5, 3.0]], references=[0, 1])


def test_summarize_is_mean_and_sample_std():
    s = summarize([0.9, 0.8, 0.7])
    assert s["mean"] == pytest.approx(0.8) and s["std"] == pytest.approx(0.1) and s["n"] == 3
    assert summarize([0.5])["std"] is None


def test_fid_of_shifted_gaussians_is_squared_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    b = rng.normal(size=(4000, 3)) + np.array([2.0, 0.0, 0.0])
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Same covariance: FID = |mu_a - mu_b|^2 (+ sampling noise).
    assert frechet_distance(a, b) == pytest.approx(4.0, rel=0.05)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_has_a_standard_error():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(600, 8)), rng.normal(size=(600, 8))
    kid, se = kernel_inception_distance(a, b)
    assert abs(kid) < 3 * se + 1e-3 and se > 0
    kid_far, se_far = kernel_inception_distance(a, b + 1.0)
    assert kid_far > 10 * se_far and kid_far > kid


def test_precision_recall_detect_mode_collapse():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(300, 2))
    assert precision_recall(real, rng.normal(size=(300, 2))) > (0.8, 0.8)
    collapsed = rng.normal(size=(300, 2)) * 0.05  # all synthetic in one small region
    precision, recall = precision_recall(real, collapsed)
    assert precision > 0.9 and recall < 0.3
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)
    assert fidelity_metrics(real[:3], real[:3])["fid"] is None  # too few: no number, a note
