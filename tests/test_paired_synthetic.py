"""Paired comparison of two synthetic sets image by image, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from medicraft_hf.evaluation.fidelity import _mmd2_unbiased, frechet_distance, precision_recall
from medicraft_hf.evaluation.paired_synthetic import (
    compare_synthetic,
    load_synthetic_record,
    pair,
    save_synthetic_record,
)

NAMES = ["a", "b"]


def record(seeds, labels, predicted, anatomy_ok, features, train):
    return {"seeds": np.asarray(seeds), "labels": np.asarray(labels), "predicted": np.asarray(predicted),
            "anatomy_ok": np.asarray(anatomy_ok, np.float64), "features": np.asarray(features, np.float64),
            "train_features": np.asarray(train, np.float64), "class_names": np.asarray(NAMES)}


def test_pairs_by_seed_and_class_whatever_the_order():
    train = np.zeros((3, 2))
    ours = record([5, 6, 7], [0, 1, 0], [0, 0, 0], [1, 1, 1], np.zeros((3, 2)), train)
    theirs = record([7, 5, 6, 9], [0, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1], np.zeros((4, 2)), train)
    i, j = pair(ours, theirs)
    assert i.tolist() == [0, 2] and j.tolist() == [1, 0]  # seed 6 is class b here, class a there: unpaired


def test_differences_are_the_hand_computed_ones():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(40, 3))
    f_ours, f_theirs = rng.normal(size=(8, 3)), rng.normal(0.5, 1.0, size=(8, 3))
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    ours = record(range(8), labels, [0, 0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 0], f_ours, train)
    theirs = record(range(8), labels, [0, 1, 1, 1, 1, 1, 0, 0], [1, 0, 1, 0, 1, 1, 1, 1], f_theirs, train)
    result = compare_synthetic(ours, theirs, n_boot=300)
    m = result["measures"]
    assert result["n_pairs"] == 8
    # TRTS: 7/8 vs 3/8; class a 3/4 vs 1/4, class b 4/4 vs 2/4.
    assert (m["trts"]["ours"], m["trts"]["theirs"], m["trts"]["difference"]) == pytest.approx((7 / 8, 3 / 8, 4 / 8))
    assert m["trts_a"]["difference"] == pytest.approx(2 / 4) and m["trts_b"]["difference"] == pytest.approx(2 / 4)
    assert m["anatomy_ok"]["difference"] == pytest.approx(7 / 8 - 6 / 8)
    # Fidelity at the full set is the evaluation's own FID, unbiased KID, precision and recall.
    assert m["fid"]["ours"] == pytest.approx(frechet_distance(train, f_ours))
    assert m["kid"]["theirs"] == pytest.approx(_mmd2_unbiased(train, f_theirs))
    precision, recall = precision_recall(train, f_ours)
    assert (m["precision"]["ours"], m["recall"]["ours"]) == pytest.approx((precision, recall))
    for name, measure in m.items():
        assert measure["low"] <= measure["high"], name
    # Ours is never worse on a pair (4 better, 4 equal): no replicate can go below 0.
    assert m["trts"]["low"] >= 0 and m["trts"]["high"] > 0


def test_a_set_against_itself_differs_by_exactly_zero_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    train = rng.normal(size=(30, 4))
    save_synthetic_record(tmp_path, seeds=range(10), labels=[0, 1] * 5, predicted=[0] * 10,
                          features=rng.normal(size=(10, 4)), anatomy_ok=[True, False, None] + [True] * 7,
                          train_features=train, class_names=NAMES)
    loaded = load_synthetic_record(tmp_path)
    assert np.isnan(loaded["anatomy_ok"][2]) and loaded["anatomy_ok"][:2].tolist() == [1.0, 0.0]
    result = compare_synthetic(loaded, loaded, n_boot=50)
    for name, measure in result["measures"].items():
        assert (measure["difference"], measure["low"], measure["high"]) == (0.0, 0.0, 0.0), name
    assert result["measures"]["anatomy_ok"]["ours"] == pytest.approx(8 / 9)  # the unknown verdict left out


def test_sets_that_cannot_be_paired_are_refused(tmp_path):
    train = np.zeros((5, 2))
    ours = record([1, 2], [0, 1], [0, 1], [1, 1], np.zeros((2, 2)), train)
    with pytest.raises(ValueError, match="different real-trained classifiers"):
        compare_synthetic(ours, record([1, 2], [0, 1], [0, 1], [1, 1], np.zeros((2, 2)), train + 1))
    with pytest.raises(ValueError, match="same --seed and per-class counts"):
        compare_synthetic(ours, record([3, 4], [0, 1], [0, 1], [1, 1], np.zeros((2, 2)), train))
    other = record([1, 2], [0, 1], [0, 1], [1, 1], np.zeros((2, 2)), train)
    other["class_names"] = np.asarray(["x", "y"])
    with pytest.raises(ValueError, match="other classes"):
        compare_synthetic(ours, other)
    with pytest.raises(FileNotFoundError, match="evaluate that synthetic set again"):
        load_synthetic_record(tmp_path)
