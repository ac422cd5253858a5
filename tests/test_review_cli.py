"""The loop end to end: `medicraft review` serves a saved dataset, the real anatomy check is
stored beside each verdict, `medicraft review-report` calibrates it and pushes the ratings."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import datasets
import pytest
from datasets import DatasetDict
from sklearn.metrics import cohen_kappa_score

from medicraft_hf.cards.model_card import model_card
from medicraft_hf.cli import build_parser, main
from medicraft_hf.commands.review import review_round
from medicraft_hf.data.build import rows_to_dataset, save_dataset_dict
from medicraft_hf.data.phantom import phantom_bscan
from medicraft_hf.review.session import ReviewRound, load_review_dataset
from medicraft_hf.review.store import RatingsStore, load_ratings, push_ratings
from medicraft_hf.schema import empty_row

SPACE_APP = Path(__file__).resolve().parents[1] / "space" / "review_app.py"

# Phantom scans with the failures the medical team named, posing as generated ones.
DEFECTS = {None: "correct", "double_fovea": "doubled_fovea", "flat_fovea": "hypoplastic_fovea",
           "no_fovea": "no_fovea", "heavy_noise": "corrupted"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    rows = []
    for i, (defect, truth) in enumerate([(d, t) for d, t in DEFECTS.items() for _ in range(2)]):
        image, _ = phantom_bscan("healthy" if i % 2 else "nevus", seed=i, size=(64, 128), defect=defect)
        row = empty_row()
        row.update(image=image, label=1 - i % 2, source="synthetic", image_id=f"gen-{i:03d}", model_id="local/oct",
                   model_revision="abc123", scheduler="dpmsolver++", num_inference_steps=20, guidance_scale=1.0, seed=i)
        rows.append((row, truth))
    folder = tmp_path_factory.mktemp("generated") / "oct-synthetic"
    save_dataset_dict(DatasetDict({"train": rows_to_dataset([r for r, _ in rows])}), folder)
    return folder, {r["image_id"]: truth for r, truth in rows}


def test_medicraft_review_serves_a_saved_dataset(generated, tmp_path):
    folder, _ = generated
    args = build_parser().parse_args(["review", str(folder), "--ratings", str(tmp_path / "ratings"),
                                      "--num-images", "6", "--round", "r7"])
    assert main(["review", str(folder), "--ratings", str(tmp_path / "r"), "--num-images", "0"]) == 2
    review = review_round(args)  # what `medicraft review` serves
    assert len(review) == 6 and review.round_name == "r7" and not review.blinded
    position, item = review.next_item("r-jo")
    assert item.image_id.startswith("gen-") and position == 0
    review.record("r-jo", item.image_id, "no_fovea")
    image_id = item.image_id
    [rating] = RatingsStore(tmp_path / "ratings").ratings()
    assert (rating["image_id"], rating["verdict"], rating["dataset"]) == (image_id, "no_fovea", "oct-synthetic")
    # The real anatomy check ran on the same image; its verdict and score sit beside the expert's.
    assert rating["auto_verdict"] in DEFECTS.values() and 0 <= rating["auto_score"] <= 1


def test_review_report_calibrates_on_experts_and_pushes_private(generated, tmp_path, hub, capsys):
    folder, truth = generated
    ratings_dir = tmp_path / "ratings"
    review = ReviewRound(load_review_dataset(str(folder)), ratings_dir, round_name="round-1")
    for reviewer in ("expert-1", "expert-2"):  # two experts who see each failure as drawn
        for image_id in review.order(reviewer):
            review.record(reviewer, image_id, truth[image_id])
    repo_id = hub.repo_id("oct-ratings")
    out = tmp_path / "report"
    model_dir = tmp_path / "pipeline"  # the model card as training writes it, review pending
    model_dir.mkdir()
    model_card(class_names=["healthy", "nevus"], resolution=(64, 128), train_steps=10,
               dataset_name="oct-phantom").save(model_dir / "README.md")
    assert "Pending: run `medicraft review`" in (model_dir / "README.md").read_text()
    assert main(["review-report", "--ratings", str(ratings_dir), "--out", str(out), "--calibrate",
                 "--push-ratings", repo_id, "--update-card", str(model_dir)]) == 0
    assert "20 ratings of 10 images by 2 reviewer(s)" in capsys.readouterr().out

    report = json.loads((out / "report.json").read_text())
    stored = RatingsStore(ratings_dir).ratings()
    assert all(r["auto_verdict"] is not None for r in stored)  # the real check ran on every image
    # Agreement with the real anatomy check, cross-checked against scikit-learn's kappa.
    expert_ok = [r["verdict"] == "correct" for r in stored]
    auto_ok = [r["auto_verdict"] == "correct" for r in stored]
    assert report["auto_agreement"]["kappa_correct"] == pytest.approx(cohen_kappa_score(expert_ok, auto_ok))
    assert report["auto_agreement"]["kappa"] == pytest.approx(
        cohen_kappa_score([r["verdict"] for r in stored], [r["auto_verdict"] for r in stored]))
    # The calibrated threshold's numbers recount from the ratings, and no cut does better.
    cal = json.loads((out / "calibration.json").read_text())
    scores = [r["auto_score"] for r in stored]

    def balanced_accuracy(t):
        kept = [s >= t for s in scores]
        return (sum(k and e for k, e in zip(kept, expert_ok)) / sum(expert_ok)
                + sum(not k and not e for k, e in zip(kept, expert_ok)) / (len(stored) - sum(expert_ok))) / 2

    assert cal["balanced_accuracy"] == pytest.approx(balanced_accuracy(cal["threshold"]))
    assert all(balanced_accuracy(t) <= cal["balanced_accuracy"] + 1e-9 for t in sorted(set(scores)) + [0.5])
    assert cal["balanced_accuracy"] > 0.75  # the phantom's failures are mostly what the check was built for
    assert report["inter_reviewer"]["pairwise"][0]["kappa"] == 1.0
    assert "round-1" in (out / "card_section.md").read_text()
    card = (model_dir / "README.md").read_text()
    assert "Pending: run `medicraft review`" not in card and "**20%** of 20 generated scans" in card
    assert "`local/oct@abc123`" in card and "2 pseudonymous reviewer(s)" in card

    assert hub.repo_is_private(repo_id, "dataset")
    pushed = load_ratings(repo_id)
    assert sorted(pushed["rating_id"]) == sorted(r["rating_id"] for r in stored)
    assert isinstance(datasets.load_dataset(repo_id, split="train").features["verdict"], datasets.Value)

    # A second site pushes only its own store: the repo keeps the union, each rating once.
    site2 = tmp_path / "site2"
    ReviewRound(load_review_dataset(str(folder)), site2, round_name="round-1", anatomy_check=None).record(
        "expert-3", "gen-000", "correct")
    push_ratings(load_ratings(site2), repo_id)
    push_ratings(load_ratings(site2), repo_id)  # pushed twice by mistake: no duplicate
    pushed = load_ratings(repo_id)
    assert len(pushed) == len(stored) + 1 and len(set(pushed["rating_id"])) == len(pushed)


def test_review_report_bad_input_is_one_clear_line(tmp_path, capsys):
    assert main(["review-report", "--ratings", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "No ratings folder or dataset" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["review-report", "--ratings", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "ratings are empty" in capsys.readouterr().err


def test_space_review_launcher(generated, tmp_path, monkeypatch):
    import gradio as gr

    folder, _ = generated
    monkeypatch.setenv("MEDICRAFT_REVIEW_DATASET", str(folder))
    monkeypatch.setenv("MEDICRAFT_REVIEW_RATINGS", str(tmp_path / "ratings"))
    monkeypatch.setenv("MEDICRAFT_REVIEW_ROUND", "space-round")
    app = runpy.run_path(str(SPACE_APP))  # builds the Blocks; serving is left to the Space
    assert isinstance(app["demo"], gr.Blocks) and len(app["review"]) == 10
    assert app["review"].round_name == "space-round" and app["review"].store.directory == tmp_path / "ratings"
    monkeypatch.delenv("MEDICRAFT_REVIEW_DATASET")
    with pytest.raises(SystemExit, match="MEDICRAFT_REVIEW_DATASET"):
        runpy.run_path(str(SPACE_APP))
