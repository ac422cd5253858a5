"""Issue 21 items 1 and 5: the truth of each scan is the set it was drawn from (recorded at
the draw), the report and the card use only that; a calibration says when it is not
informative and `generate --anatomy-calibration` refuses it."""

from __future__ import annotations

import argparse
import json
import random

import numpy as np
import pytest

from medicraft_hf.review.calibrate import calibrate_threshold, calibration_warnings, write_calibration
from medicraft_hf.review.card import review_card_section
from medicraft_hf.review.report import compute_report, review_report
from medicraft_hf.review.session import ReviewRound
from medicraft_hf.review.store import RatingsStore, make_rating
from tests.review_helpers import review_dataset

N = 16
GOOD_SEEDS = {1000 + i for i in range(N) if i % 3 == 0}  # the generated scans a perfect reviewer calls correct


def _real_set(kind):
    if kind == "phantom":  # the phantom stands in for real scans; its rows say `phantom`
        return review_dataset(N, source="phantom", prefix="ref", seed=1)
    if kind == "real":
        return review_dataset(N, source="real", prefix="ref", seed=1)
    # Another model's output used as the reference set: drawn from --real, so real by role.
    return review_dataset(N, source="synthetic", prefix="ref", seed=1, model_revision="rev-other")


def _play(review, name, answer, verdict):
    """Rate every scan of the round; returns what the test itself knows: (image_id, guess, verdict)."""
    played = []
    for image_id in review.order(review.pseudonym(name)):
        guess, v = answer(image_id), verdict(image_id)
        review.record(name, image_id, v, origin_guess=guess, comment="x" if v == "other" else None)
        played.append((image_id, guess, v))
    return played


@pytest.mark.parametrize("kind", ["phantom", "real", "synthetic"])
def test_turing_truth_is_the_set_drawn_from(kind, tmp_path):
    generated = review_dataset(N, prefix="gen")
    review = ReviewRound(generated, tmp_path / "ratings", real=_real_set(kind), round_name="t1", seed=3,
                         anatomy_check=None)
    seeds = dict(zip(generated["image_id"], generated["seed"]))
    # The test's own truth: by the set each id came from, never read back from the store.
    is_real = {i: i.startswith("ref-") for i in review.items}
    truth = {i: "real" if is_real[i] else "synthetic" for i in review.items}

    def verdict(i):
        return "correct" if (not is_real[i] and seeds[i] in GOOD_SEEDS) or is_real[i] else "no_fovea"

    perfect = _play(review, "perfect", truth.get, verdict)
    rng = random.Random(5)
    guesses = {i: rng.choice(["real", "synthetic"]) for i in review.items}
    randomly = _play(review, "random", guesses.get, lambda i: rng.choice(["correct", "no_fovea", "corrupted"]))

    # The draw was recorded: every scan's truth and model version, before any rating.
    recorded = json.loads(review.manifest_path.read_text())["images"]
    assert {i: r["truth"] for i, r in recorded.items()} == truth
    assert {r["model_version"] for r in recorded.values()} == {"real", "local/medicraft-tiny@rev-a"}

    report = review_report(RatingsStore(tmp_path / "ratings").to_dataset(), tmp_path / "report")
    turing = report["turing_test"]
    perfect_id, random_id = review.pseudonym("perfect"), review.pseudonym("random")
    assert turing["per_reviewer"][perfect_id] == {"n": 2 * N, "successes": 2 * N, "rate": 1.0,
                                                  "ci_low": pytest.approx(0.8928, abs=1e-4), "ci_high": 1.0}
    random_hits = sum(g == truth[i] for i, g, _ in randomly)
    assert turing["per_reviewer"][random_id]["successes"] == random_hits
    assert turing["overall"]["successes"] == 2 * N + random_hits and turing["overall"]["n"] == 4 * N
    assert turing["per_truth"]["real"]["n"] == turing["per_truth"]["synthetic"]["n"] == 2 * N

    # Correctness and the card: generated scans only, recounted from what the reviewers said.
    played = perfect + randomly
    gen = [(i, v) for i, _, v in played if not is_real[i]]
    n_correct = sum(v == "correct" for _, v in gen)
    rates = {(r["model_version"], r["label"]): r for r in report["correctness"]}
    assert set(v for v, _ in rates) == {"real", "local/medicraft-tiny@rev-a"}  # never `phantom`
    assert (rates["local/medicraft-tiny@rev-a", "all"]["successes"], rates["local/medicraft-tiny@rev-a", "all"]["n"]) \
        == (n_correct, len(gen))
    assert rates["real", "all"]["n"] == 2 * N
    latest = report["latest_round"]
    assert latest["model_versions"] == ["local/medicraft-tiny@rev-a"]
    assert (latest["n_correct_synthetic"], latest["n_rated_synthetic"]) == (n_correct, 2 * N)
    card = report["card_section"]
    assert f"**{n_correct / len(gen):.0%}** of {len(gen)} generated scans anatomically correct ({n_correct} of " \
           f"{len(gen)};" in card
    hits = 2 * N + random_hits
    assert f"{hits / (4 * N):.0%} ({hits} of {4 * N} answers)" in card and "phantom" not in card
    assert card == review_card_section(compute_report(RatingsStore(tmp_path / "ratings").to_dataset()))


def test_a_redrawn_round_with_other_truths_is_refused(tmp_path):
    ReviewRound(review_dataset(4, prefix="gen"), tmp_path, round_name="r", anatomy_check=None)
    ReviewRound(review_dataset(4, prefix="gen"), tmp_path, round_name="r", anatomy_check=None)  # a restart: fine
    with pytest.raises(ValueError, match="drawn earlier with other scans"):
        ReviewRound(review_dataset(4, prefix="gen", model_revision="rev-b"), tmp_path, round_name="r",
                    anatomy_check=None)


def test_ratings_without_a_recorded_truth_are_left_out_and_counted():
    # A rating made before the truth was recorded: its `source` says phantom; nothing is guessed.
    rows = [make_rating(round_name="old", reviewer="r-a", verdict="correct", blinded=True, origin_guess="real",
                        image_ref={"image_id": f"x{i}", "source": "phantom", "label": "healthy"},
                        created_at="2026-01-01T00:00:00") for i in range(3)]
    report = compute_report(__import__("pandas").DataFrame(rows))
    assert report["turing_test"] == {"n_unrecorded": 3}
    assert report["latest_round"]["n_rated_synthetic"] == 0 and report["latest_round"]["n_unrecorded"] == 3
    assert "carry no recorded truth" in review_card_section(report)


def test_calibration_says_when_it_is_not_informative(tmp_path, capsys):
    from medicraft_hf.commands.generate import anatomy_filter_of

    rng = np.random.default_rng(1)
    scores = rng.random(60)
    chance = calibrate_threshold(scores, rng.random(60) < 0.5)  # verdicts unrelated to the score
    assert not chance["informative"] and any("permutation p" in w for w in chance["warnings"])
    assert chance["balanced_accuracy"] > 0.6  # the best cut looks better than chance; the test says it is not
    few = calibrate_threshold([0.9, 0.8, 0.2, 0.1], [True, True, False, False])
    assert any("too few ratings per verdict" in w for w in few["warnings"])
    # The file: sensitivity 88.5%, specificity 13.0%, balanced accuracy 50.8%.
    assert any("near chance" in w for w in calibration_warnings(
        {"balanced_accuracy": 0.508, "n_expert_correct": 26, "n_expert_faulty": 23}))
    good = calibrate_threshold(scores, scores > 0.4)
    assert good["informative"] and good["warnings"] == [] and good["p_value"] < 0.01

    # The card quotes the warning.
    report = {"latest_round": {"round": "r", "date": "d", "reviewers": 1, "correct_rate": None,
                               "n_rated_synthetic": 0, "model_versions": []}, "calibration": chance}
    assert "not informative" in review_card_section(report) and "permutation p" in review_card_section(report)

    def args(path, threshold=None):
        return argparse.Namespace(anatomy_filter=True, anatomy_threshold=threshold, anatomy_calibration=path)

    with pytest.raises(ValueError, match=r"--anatomy-calibration .* is not informative .*--anatomy-threshold"):
        anatomy_filter_of(args(write_calibration(chance, tmp_path / "chance.json")))
    assert anatomy_filter_of(args(write_calibration(good, tmp_path / "good.json"))).threshold == good["threshold"]
    hand_written = write_calibration({"threshold": 0.3}, tmp_path / "hand.json")
    assert anatomy_filter_of(args(hand_written)).threshold == 0.3
    assert "nothing says it is informative" in capsys.readouterr().err
