"""Exam-level aggregation, patient bootstrap and paired comparisons against hand-computed values."""

import numpy as np
import pytest

from medicraft_hf.evaluation.uncertainty import bootstrap, exam_predictions, paired_difference, ratio, score


def onehot(classes, num_classes=2):
    return np.eye(num_classes)[classes]


def test_exam_predictions_mean_and_max():
    probs = np.array([[0.8, 0.2], [0.4, 0.6], [0.1, 0.9]])
    out, labels, exams = exam_predictions(probs, [0, 0, 1], ["a", "a", "b"])
    assert exams == ["a", "b"] and labels.tolist() == [0, 1]
    np.testing.assert_allclose(out, [[0.6, 0.4], [0.1, 0.9]])
    out, _, _ = exam_predictions(probs, [0, 0, 1], ["a", "a", "b"], how="max")
    np.testing.assert_allclose(out[0], [0.8 / 1.4, 0.6 / 1.4])  # each class's best plane, renormalised
    with pytest.raises(ValueError, match="Exam 'a' has scans of several labels"):
        exam_predictions(probs, [0, 1, 1], ["a", "a", "b"])


def test_score_by_hand():
    # labels 0,0,1,2; predicted 0,1,1,1 -> accuracy 2/4; recalls 1/2, 1/1, 0/1 -> balanced 0.5
    s = score(np.eye(3)[[0, 1, 1, 1]], np.array([0, 0, 1, 2]), 3)
    assert s["accuracy"] == 0.5 and s["balanced_accuracy"] == pytest.approx(0.5)
    assert (s["recall_0"], s["recall_1"], s["recall_2"]) == (0.5, 1.0, 0.0)


def test_bootstrap_over_two_patients_has_the_hand_computed_distribution():
    # Patient p1's scan is right, p2's is wrong. A resample is (p1,p1) -> 1, (p1,p2) or (p2,p1) -> 0.5,
    # (p2,p2) -> 0, with probabilities 1/4, 1/2, 1/4: mean 0.5, 95% interval [0, 1].
    run = onehot([0, 0])
    result = bootstrap([run], np.array([0, 1]), ["p1", "p2"], "accuracy", n_boot=4000, seed=1)
    assert result["mean"] == pytest.approx(0.5, abs=0.02)
    assert (result["low"], result["high"]) == (0.0, 1.0)
    # A patient's scans move together: p1 with two right scans and p2 with two wrong ones gives
    # the same distribution (not the narrower one of four independent scans).
    two_each = bootstrap([onehot([0, 0, 0, 0])], np.array([0, 0, 1, 1]), ["p1", "p1", "p2", "p2"], "accuracy",
                         n_boot=4000, seed=1)
    assert two_each == result


def test_bootstrap_includes_the_seed_spread():
    right, wrong = onehot([0]), onehot([1])
    one_patient = bootstrap([right, wrong], np.array([0]), ["p"], "accuracy", n_boot=4000, seed=2)
    assert one_patient["mean"] == pytest.approx(0.5, abs=0.03) and (one_patient["low"], one_patient["high"]) == (0, 1)
    assert bootstrap([right, right], np.array([0]), ["p"], "accuracy", n_boot=200) == {
        "mean": 1.0, "low": 1.0, "high": 1.0, "n_boot": 200}


def test_interval_of_the_seed_mean_by_hand():
    # Ten seeds on one patient, five always right and five always wrong. One run per replicate:
    # accuracy 0 or 1, interval [0, 1]. The mean over ten seeds drawn with replacement is
    # Binomial(10, 1/2) / 10: P(<= 0.1) = 11/1024 < 2.5% < P(<= 0.2) = 56/1024, so [0.2, 0.8].
    right, wrong = onehot([0]), onehot([1])
    runs, labels = [right] * 5 + [wrong] * 5, np.array([0])
    one_run = bootstrap(runs, labels, ["p"], "accuracy", n_boot=4000, seed=5)
    assert (one_run["low"], one_run["high"]) == (0.0, 1.0)
    mean = bootstrap(runs, labels, ["p"], "accuracy", n_boot=4000, seed=5, interval="mean")
    assert mean["mean"] == pytest.approx(0.5, abs=0.01)
    assert (mean["low"], mean["high"]) == pytest.approx((0.2, 0.8))
    # Seeds that agree leave only the patients: both kinds are then the same interval, draw for draw.
    patients = np.array([0, 1]), ["p1", "p2"]
    same = [onehot([0, 0])] * 3
    assert bootstrap(same, *patients, "accuracy", n_boot=500, seed=6, interval="mean") == bootstrap(
        same, *patients, "accuracy", n_boot=500, seed=6)
    # A paired difference of a set with itself cancels in both kinds; a wrong kind is refused.
    assert paired_difference(runs, runs, labels, ["p"], "accuracy", n_boot=200, interval="mean")["high"] == 0.0
    with pytest.raises(ValueError, match="interval must be one of"):
        bootstrap(runs, labels, ["p"], interval="median")


def test_evaluation_refuses_an_unknown_interval_before_any_work(tmp_path):
    from medicraft_hf.evaluation.run import run_evaluation

    # the real dataset does not exist: the interval must be refused first, before anything is read
    with pytest.raises(ValueError, match="interval must be one of .* got 'median'"):
        run_evaluation(tmp_path / "missing", tmp_path / "missing-too", tmp_path / "out", interval="median")
    with pytest.raises(ValueError, match="interval must be one of"):
        run_evaluation(tmp_path / "missing", None, tmp_path / "out", interval="median")
    assert not (tmp_path / "out").exists()


def test_paired_difference_and_ratio_by_hand():
    labels, groups = np.array([0, 1]), ["p1", "p2"]
    a = [onehot([0, 1]), onehot([0, 1])]  # right on both patients, both seeds
    b = [onehot([0, 0]), onehot([0, 0])]  # right on p1 only
    same = paired_difference(a, a, labels, groups, "accuracy", n_boot=500)
    assert (same["mean"], same["low"], same["high"]) == (0.0, 0.0, 0.0)  # what is shared cancels exactly
    diff = paired_difference(a, b, labels, groups, "accuracy", n_boot=4000, seed=3)
    # A - B = 1 - acc_B, acc_B in {1, .5, 0} with 1/4, 1/2, 1/4: mean 0.5, interval [0, 1]
    assert diff["mean"] == pytest.approx(0.5, abs=0.02) and (diff["low"], diff["high"]) == (0.0, 1.0)
    # A / B = 1 / acc_B in {1, 2, undefined}: over the defined draws, (1/4 * 1 + 1/2 * 2) / (3/4) = 5/3
    r = ratio(a, b, labels, groups, "accuracy", n_boot=4000, seed=4)
    assert r["mean"] == pytest.approx(5 / 3, abs=0.03) and (r["low"], r["high"]) == (1.0, 2.0)
    assert r["n_boot"] < 4000  # the undefined draws (acc_B = 0) are left out, not counted as 0
    with pytest.raises(ValueError, match="same seeds on both sides"):
        paired_difference(a, b[:1], labels, groups)


def test_class_fidelity_by_hand():
    from medicraft_hf.evaluation.run import class_fidelity

    # generated as 0,1,1,1; classified as 0,0,1,1: 3 of 4 right; class 0: 1/1, class 1: 2/3, class 2: none made
    t = class_fidelity(np.eye(3)[[0, 0, 1, 1]], [0, 1, 1, 1], ["a", "b", "c"])
    assert t["overall"] == 0.75 and t["per_class"] == {"a": 1.0, "b": pytest.approx(2 / 3), "c": None}
