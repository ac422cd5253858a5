"""The augmentation study (issue 17, item 7) on tiny data: the arms' counts, the draw from the
pool, and a whole run with real datasets and classifiers."""

import json

import numpy as np
import pytest

from medicraft_hf.evaluation.augmentation import arm_counts, draw_from_pool

SMALL = (32, 64)


def test_arm_counts_are_the_hand_computed_ones():
    assert arm_counts([4, 3, 2, 1], "balance") == [0, 1, 2, 3]  # every class up to the majority (4)
    assert arm_counts([4, 3, 2, 1], "x2") == [5, 5, 5, 5]  # 2 x 10 real, balanced
    assert arm_counts([4, 3, 2, 1], "x1.5") == [4, 4, 4, 3]  # 15: the remainder to the first classes
    for bad in ("x0", "xx", "twice", "x-1"):
        with pytest.raises(ValueError, match=f"Unknown arm '{bad}'"):
            arm_counts([4, 3, 2, 1], bad)


def test_draw_takes_the_first_eligible_scans_of_each_class_in_pool_order():
    labels = np.array([0, 1, 0, 1, 0, 1, 0])
    eligible = np.array([True, True, False, True, True, False, True])
    assert draw_from_pool(labels, [2, 2], eligible, ["a", "b"], "arm").tolist() == [0, 1, 3, 4]
    assert draw_from_pool(labels, [3, 0], np.ones(7, bool), ["a", "b"], "arm").tolist() == [0, 2, 4]
    with pytest.raises(ValueError, match="Arm 'arm' needs 3 synthetic 'b' scans but the pool has 2 usable"):
        draw_from_pool(labels, [0, 3], eligible, ["a", "b"], "arm")
    assert draw_from_pool(labels, [0, 3], eligible, ["a", "b"], "arm", up_to=True).tolist() == [1, 3]


@pytest.mark.slow
def test_a_tiny_study_runs_every_arm_against_one_real_only_reference(tmp_path):
    from medicraft_hf.data.build import rows_to_dataset
    from medicraft_hf.data.phantom import phantom_rows
    from medicraft_hf.data.split import split_by_patient
    from medicraft_hf.evaluation.augmentation import run_augmentation_study
    from medicraft_hf.evaluation.classifier import ClassifierSettings

    # Real: imbalanced (more healthy); the pool: other phantom patients, as many of each class.
    rows = phantom_rows(20, seed=1, size=SMALL, class_weights=[3, 1, 1, 1], planes_deg=(0.0, 90.0))
    real = split_by_patient(rows_to_dataset(rows), seed=0, fractions={"train": 0.5, "validation": 0.25, "test": 0.25})
    pool = rows_to_dataset(phantom_rows(24, seed=2, size=SMALL, class_weights=[1, 1, 1, 1], planes_deg=(0.0, 90.0)))
    settings = ClassifierSettings(max_steps=6, eval_every=2, patience=1, batch_size=8, hidden_size=16, num_heads=2,
                                  num_layers=1)
    real_counts = np.bincount(real["train"]["label"], minlength=4).tolist()
    # As `medicraft generate --balance-to` makes it: no scans of the majority class.
    majority = int(np.argmax(real_counts))
    pool = pool.filter(lambda row: row["label"] != majority)
    pool_counts = np.bincount(pool["label"], minlength=4).tolist()
    assert pool_counts[majority] == 0
    result = run_augmentation_study(real, pool, tmp_path, arms=("balance",), seeds=(3, 4), resolution=SMALL,
                                    settings=settings, n_boot=40, log=lambda *a: None)
    assert result["real_train_counts"] == real_counts and result["pool_counts"] == pool_counts
    expected_balance = [max(real_counts) - n for n in real_counts]
    assert result["arms"]["balance"]["synthetic_counts"] == expected_balance
    filtered = result["arms"]["balance+filtered"]  # as many as wanted, or all the faithful scans there are
    assert filtered["wanted_counts"] == expected_balance
    assert filtered["synthetic_counts"] == [min(n, k) for n, k in zip(expected_balance, result["pool_faithful_counts"])]
    for arm in result["arms"].values():
        assert set(arm["levels"]) == {"scan", "exam_learned", "exam_rule"}
        for level in arm["levels"].values():
            diff = level["difference"]["balanced_accuracy"]
            assert diff["low"] <= diff["mean"] <= diff["high"] and -1 <= diff["mean"] <= 1
    # One real-only reference for all arms (trained once), one TRSTR run per arm and seed.
    runs = tmp_path / "runs"
    assert sorted(p.name for p in (runs / "real-only").glob("*.json")) == ["TRTR-seed3.json", "TRTR-seed4.json"]
    for name in ("balance", "balance+filtered"):
        assert sorted(p.name for p in (runs / name).glob("*.json")) == ["TRSTR-seed3.json", "TRSTR-seed4.json"]
    saved = json.loads((tmp_path / "augmentation.json").read_text())
    assert saved["arms"].keys() == result["arms"].keys()
    assert "| balance+filtered |" in (tmp_path / "augmentation.md").read_text()
    # A rerun resumes: nothing is trained again, the same figures come back.
    again = run_augmentation_study(real, pool, tmp_path, arms=("balance",), seeds=(3, 4), resolution=SMALL,
                                   settings=settings, n_boot=40, log=lambda *a: None)
    assert again["arms"] == result["arms"]
    # An arm that needs the class the pool lacks says so (the real-only runs are reused).
    with pytest.raises(ValueError, match="needs .* synthetic .* scans but the pool has 0 usable"):
        run_augmentation_study(real, pool, tmp_path, arms=("x1",), filtered=False, seeds=(3, 4), resolution=SMALL,
                               settings=settings, n_boot=40, log=lambda *a: None)
