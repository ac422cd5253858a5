"""The round's report on a small ratings dataset whose every number was worked out by hand."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from medicraft_hf.review.calibrate import calibrate_threshold, load_calibration, write_calibration
from medicraft_hf.review.card import review_card_section, update_card_section
from medicraft_hf.review.report import cohen_kappa, fleiss_kappa, review_report, wilson_interval
from medicraft_hf.review.store import RatingsStore, make_rating, merge_ratings

# Round r1 (model m@v1, unblinded): reviewers A, B, C rate s1..s4; the anatomy check said
# ok / ok / no_fovea / corrupted with scores .9 / .7 / .2 / .1.
R1_IMAGES = {"s1": ("healthy", "ok", 0.9), "s2": ("healthy", "ok", 0.7),
             "s3": ("nevus", "no_fovea", 0.2), "s4": ("nevus", "corrupted", 0.1)}
R1_VERDICTS = {
    "A": ["correct", "correct", "no_fovea", "corrupted"],
    "B": ["correct", "no_fovea", "no_fovea", "corrupted"],
    "C": ["correct", "correct", "no_fovea", "doubled_fovea"],
}
# Round r2 (blinded): A and B see two real scans and two of model m@v2.
R2_IMAGES = {"real1": "real", "real2": "real", "t1": "synthetic", "t2": "synthetic"}
R2 = {  # reviewer: [(verdict, guess)] in R2_IMAGES order
    "A": [("correct", "real"), ("correct", "synthetic"), ("correct", "synthetic"), ("hypoplastic_fovea", "synthetic")],
    "B": [("correct", "synthetic"), ("correct", "synthetic"), ("correct", "real"), ("correct", "synthetic")],
}


def _r1(reviewer):
    for (image_id, (label, auto, score)), verdict in zip(R1_IMAGES.items(), R1_VERDICTS[reviewer]):
        ref = {"image_id": image_id, "label": label, "source": "synthetic", "model_id": "m",
               "model_revision": "v1", "seed": int(image_id[1]), "truth": "synthetic", "model_version": "m@v1"}
        yield make_rating(round_name="r1", reviewer=f"r-{reviewer}", image_ref=ref, verdict=verdict,
                          auto_verdict=auto, auto_score=score, created_at=f"2026-01-0{ord(reviewer) - 64}T10:00:00")


def _r2(reviewer):
    for (image_id, source), (verdict, guess) in zip(R2_IMAGES.items(), R2[reviewer]):
        # The truth as the round records it when drawn (review.session.truth_of).
        ref = {"image_id": image_id, "label": "melanoma", "source": source, "truth": source, "model_version": "real"}
        if source == "synthetic":
            ref.update(model_id="m", model_revision="v2", seed=int(image_id[1]), model_version="m@v2")
        yield make_rating(round_name="r2", reviewer=f"r-{reviewer}", image_ref=ref, verdict=verdict, blinded=True,
                          origin_guess=guess, created_at="2026-02-01T09:00:00")


@pytest.fixture(scope="module")
def ratings(tmp_path_factory):
    # Two sites' stores; one of A's ratings was copied into both (must count once).
    site1, site2 = (RatingsStore(tmp_path_factory.mktemp(s)) for s in ("site1", "site2"))
    for row in [*_r1("A"), *_r2("A")]:
        site1.add(row)
    for row in [*_r1("B"), *_r1("C"), *_r2("B"), next(_r1("A"))]:
        site2.add(row)
    merged = merge_ratings([site1.directory, site2.directory])
    assert len(merged) == 12 + 8
    return merged


def test_wilson_interval_matches_published_values():
    assert wilson_interval(3, 4) == pytest.approx((0.3006, 0.9544), abs=1e-4)
    assert wilson_interval(5, 6) == pytest.approx((0.4365, 0.9699), abs=1e-4)
    assert wilson_interval(0, 6) == pytest.approx((0.0, 0.3903), abs=1e-4)
    assert wilson_interval(0, 0) is None


def test_kappas_by_hand():
    a = ["correct", "correct", "no_fovea", "corrupted"]
    b = ["correct", "no_fovea", "no_fovea", "corrupted"]
    assert cohen_kappa(a, b) == pytest.approx(7 / 11)  # p_o = 3/4, p_e = 5/16
    assert cohen_kappa(a, a) == 1.0 and cohen_kappa(["x"] * 3, ["x"] * 3) == 1.0
    assert fleiss_kappa([[3, 0, 0, 0], [2, 1, 0, 0], [0, 3, 0, 0], [0, 0, 2, 1]]) == pytest.approx(25 / 49)
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[3, 0], [1, 0]])


def test_report_numbers(ratings, tmp_path):
    report = review_report(ratings, tmp_path, calibrate=True)
    rates = {(r["model_version"], r["label"]): r for r in report["correctness"]}
    assert (rates["m@v1", "healthy"]["successes"], rates["m@v1", "healthy"]["n"]) == (5, 6)
    assert (rates["m@v1", "healthy"]["ci_low"], rates["m@v1", "healthy"]["ci_high"]) == pytest.approx((0.4365, 0.9699), abs=1e-4)
    assert rates["m@v1", "nevus"]["rate"] == 0 and rates["m@v1", "all"]["rate"] == pytest.approx(5 / 12)
    assert rates["m@v2", "all"]["rate"] == 0.75
    assert (rates["m@v2", "all"]["ci_low"], rates["m@v2", "all"]["ci_high"]) == pytest.approx((0.3006, 0.9544), abs=1e-4)
    assert rates["real", "all"]["rate"] == 1.0 and rates["real", "all"]["n"] == 4
    assert report["verdict_counts"]["m@v1"]["no_fovea"] == 4
    assert report["per_reviewer"]["r-C"] == {"n": 4, "correct_rate": 0.5, "median_seconds": None}
    assert report["per_reviewer"]["r-A"]["correct_rate"] == 5 / 8

    turing = report["turing_test"]
    assert turing["per_reviewer"]["r-A"]["rate"] == 0.75 and turing["per_reviewer"]["r-B"]["rate"] == 0.25
    assert turing["overall"]["rate"] == 0.5 and turing["overall"]["n"] == 8

    auto = report["auto_agreement"]
    assert auto["n"] == 12 and auto["accuracy"] == pytest.approx(10 / 12)
    assert auto["kappa"] == pytest.approx(0.75)  # p_o = 10/12, p_e = 48/144
    assert auto["kappa_correct"] == pytest.approx(5 / 6)  # p_o = 11/12, p_e = 1/2
    cm = auto["confusion_matrix"]
    assert (cm["correct"]["correct"], cm["no_fovea"]["correct"], cm["doubled_fovea"]["corrupted"]) == (5, 1, 1)
    assert auto["per_failure"]["corrupted"] == {"tp": 2, "fp": 1, "fn": 0, "tn": 9, "recall": 1.0, "precision": 2 / 3}
    assert auto["per_failure"]["no_fovea"]["recall"] == 0.75

    inter = report["inter_reviewer"]
    pair = {tuple(p["reviewers"]): p for p in inter["pairwise"]}
    assert pair["r-A", "r-B"]["n"] == 8 and pair["r-A", "r-B"]["kappa"] == pytest.approx(5 / 9)  # p_o = 6/8, p_e = 28/64
    assert pair["r-A", "r-C"]["kappa"] == pytest.approx(7 / 11)
    assert pair["r-B", "r-C"]["kappa"] == pytest.approx(1 / 3)
    assert inter["fleiss"] == {"n": 4, "kappa": pytest.approx(25 / 49)}

    # Youden's J peaks between .2 and .7: every correct scan kept, 6 of 7 faulty ones rejected.
    cal = report["calibration"]
    assert cal["threshold"] == pytest.approx(0.45, abs=1e-6)
    assert (cal["sensitivity"], cal["specificity"]) == pytest.approx((1.0, 6 / 7))
    assert cal["balanced_accuracy"] == pytest.approx(13 / 14) and cal["rejection_rate"] == 0.5
    assert load_calibration(tmp_path)["threshold"] == cal["threshold"]

    latest = report["latest_round"]
    assert (latest["round"], latest["date"], latest["reviewers"], latest["correct_rate"]) == ("r2", "2026-02-01", 2, 0.75)
    assert latest["model_versions"] == ["m@v2"] and latest["turing_accuracy"] == 0.5

    # Files: JSON equal to the returned numbers, markdown quoting them, readable PNGs.
    assert json.loads((tmp_path / "report.json").read_text())["auto_agreement"]["kappa"] == pytest.approx(0.75)
    md = (tmp_path / "report.md").read_text()
    assert "| m@v2 | all | 4 | 3 | 75.0% [30.1%, 95.4%] |" in md and "r-A / r-B" in md
    for name in ("correctness.png", "turing_test.png", "auto_vs_expert.png"):
        assert name in report["plots"] and Image.open(tmp_path / name).size[0] > 300


def test_card_section_quotes_the_latest_round(ratings, tmp_path):
    section = review_card_section(review_report(ratings, tmp_path / "report"))
    assert "r2" in section and "2026-02-01" in section and "**75%** of 4 generated scans" in section
    assert "2 pseudonymous reviewer(s)" in section and "`m@v2`" in section and "50%" in section
    assert "No expert review" in review_card_section({})

    # The model card's pending section is replaced in place; the sections around it stay.
    readme = tmp_path / "README.md"
    readme.write_text("---\nlicense: mit\n---\n# Model\n\n## Expert review\n\nPending: run `medicraft review`.\n\n"
                      "## Citation\n\nsome text\n")
    update_card_section(tmp_path, section)
    text = readme.read_text()
    assert "Pending" not in text and text.count("## Expert review") == 1 and "**75%**" in text
    assert text.index("**75%**") < text.index("## Citation") and text.endswith("some text\n")
    update_card_section(readme, "round two")  # a later round replaces it again
    assert "**75%**" not in readme.read_text() and "round two" in readme.read_text()
    # A card without the section (a dataset card) gets it appended.
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "README.md").write_text("# Data\n")
    assert update_card_section(tmp_path / "ds", section).read_text().startswith("# Data\n\n## Expert review\n")
    with pytest.raises(FileNotFoundError, match="README.md"):
        update_card_section(tmp_path / "missing", section)


def test_calibration_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="both correct and faulty"):
        calibrate_threshold([0.5, 0.6], [True, True])
    with pytest.raises(ValueError, match="one score per verdict"):
        calibrate_threshold([0.5], [True, False])
    with pytest.raises(FileNotFoundError, match="review-report --calibrate"):
        load_calibration(tmp_path)
    (tmp_path / "calibration.json").write_text('{"threshold": "high"}')
    with pytest.raises(ValueError, match="numeric 'threshold'"):
        load_calibration(tmp_path)
    path = write_calibration(calibrate_threshold([0.1, 0.9], [False, True]), tmp_path)
    assert load_calibration(path)["threshold"] == pytest.approx(0.5)
