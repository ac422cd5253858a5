"""`medicraft evaluate` end to end on tiny phantom data, and its bad-input errors."""

import json
from functools import lru_cache

import numpy as np
import pytest
from datasets import ClassLabel, DatasetDict
from PIL import Image

from medicraft_hf.cli import main
from medicraft_hf.data.build import rows_to_dataset, save_dataset_dict
from medicraft_hf.data.phantom import phantom_rows
from medicraft_hf.data.split import split_by_patient
from medicraft_hf.evaluation.run import run_evaluation
from medicraft_hf.schema import CLASS_NAMES

SIZE = (32, 64)
BALANCED = [1, 1, 1, 1]  # every class in every split, even with few patients


def _synthetic_rows(num_patients, seed, size=SIZE):
    for row in phantom_rows(num_patients, seed=seed, size=size, class_weights=BALANCED, planes_deg=(0.0, 90.0, 180.0, 270.0)):
        row.update(source="synthetic", patient_id=None, exam_id=None, eye=None, ground_truth=None,
                   image_id=f"syn-{row['image_id']}", model_id="tiny", scheduler="dpmsolver++",
                   num_inference_steps=2, guidance_scale=1.0, seed=seed)  # fmt: skip
        yield row


@lru_cache(maxsize=None)
def tiny_real() -> DatasetDict:
    rows = phantom_rows(16, seed=0, size=SIZE, class_weights=BALANCED, planes_deg=(0.0, 60.0, 120.0, 180.0, 240.0, 300.0))
    return split_by_patient(rows_to_dataset(rows), seed=0)


@lru_cache(maxsize=None)
def tiny_synthetic(planted_copy: bool = False) -> DatasetDict:
    rows = list(_synthetic_rows(8, seed=1))
    if planted_copy:  # a training image, republished as synthetic: the audit must catch it
        train = tiny_real()["train"]
        copy = rows[0].copy()
        copy.update(image=train[3]["image"], label=train[3]["label"], image_id="syn-planted-copy")
        rows.append(copy)
    return DatasetDict({"train": rows_to_dataset(rows)})


@pytest.mark.slow
def test_evaluate_cli_end_to_end_and_resume(tmp_path, capsys):
    real_dir = save_dataset_dict(tiny_real(), tmp_path / "real")
    syn_dir = save_dataset_dict(tiny_synthetic(planted_copy=True), tmp_path / "synthetic")
    out = tmp_path / "report"
    argv = ["evaluate", "--real", str(real_dir), "--synthetic", str(syn_dir), "--out", str(out),
            "--resolution", "32x64", "--seeds", "3", "--epochs", "1", "--batch-size", "16"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "TRTR" in printed and "TSTR" in printed and "TRSTR" in printed

    report = json.loads((out / "report.json").read_text())
    summary = report["summary"]
    assert set(summary) == {  # cards quote these keys: keep them stable
        "accuracy", "balanced_accuracy", "macro_f1", "auc_ovr", "fid", "kid", "kid_se", "precision", "recall",
        "fid_real_heldout", "kid_real_heldout", "near_copies", "near_copy_rate", "n_synthetic",
        "anatomy_ok_rate", "anatomy_ok_rate_real",
    }  # fmt: skip
    for protocol in ("TRTR", "TSTR", "TRSTR"):
        acc = summary["accuracy"][protocol]
        assert 0.0 <= acc["mean"] <= 1.0 and acc["std"] is not None
        runs = report["usefulness"][protocol]["runs"]
        assert [r["seed"] for r in runs] == [0, 1, 2]
        # The test set is always the real test split.
        assert all(sum(map(sum, r["confusion_matrix"])) == len(tiny_real()["test"]) for r in runs)
    assert report["usefulness"]["TRSTR"]["n_train"] == len(tiny_real()["train"]) + len(tiny_synthetic(True)["train"])
    assert summary["fid"] >= 0 and summary["kid_se"] >= 0 and 0 <= summary["precision"] <= 1
    assert set(report["fidelity"]["per_class"]) == set(CLASS_NAMES)
    # The planted copy is the one near-copy, paired with its training image.
    assert summary["near_copies"] == 1
    top = report["privacy"]["top_pairs"][0]
    assert top["flagged"] and top["synthetic_image_id"] == "syn-planted-copy"
    assert top["train_image_id"] == tiny_real()["train"][3]["image_id"]
    assert 0 <= summary["anatomy_ok_rate"] <= 1
    assert report["anatomy"]["synthetic"]["overall"]["n"] == len(tiny_synthetic(True)["train"])

    md = (out / "report.md").read_text()
    assert "## Usefulness" in md and "Near-copies: 1 of" in md and "## Anatomy" in md
    assert "**1 of 33 synthetic images (3.0%) are near-copies" in (out / "card_section.md").read_text()
    for name in report["plots"].values():
        with Image.open(out / name) as img:
            assert img.size[0] > 200 and img.size[1] > 100
    assert len(json.loads((out / "privacy_pairs.json").read_text())) == summary["n_synthetic"]

    # Intervals: every protocol at scan and exam level, the TSTR/TRTR ratio, from the kept probabilities.
    test = tiny_real()["test"]
    predictions = json.loads((out / "predictions.json").read_text())
    assert predictions["image_ids"] == test["image_id"] and predictions["labels"] == test["label"]
    assert all(np.asarray(r).shape == (len(test), len(CLASS_NAMES)) for rs in predictions["runs"].values() for r in rs)
    intervals = report["uncertainty"]
    assert intervals["scan"]["n"] == len(test) and intervals["exam"]["n"] == len(set(test["exam_id"]))
    for level in ("scan", "exam"):
        for name in ("TRTR", "TSTR", "TRSTR", "TSTR/TRTR"):
            ba = intervals[level][name]["balanced_accuracy"]
            assert ba["low"] <= ba["mean"] <= ba["high"], (level, name, ba)
    assert "## Uncertainty" in md
    trts = report["trts"]  # class fidelity: the real-trained classifier on the synthetic scans
    assert trts["n"] == len(tiny_synthetic(True)["train"]) and set(trts["per_class"]) == set(CLASS_NAMES)
    assert all(0 <= v <= 1 for v in trts["per_class"].values()) and "## Class fidelity (TRTS)" in md

    # A rerun resumes every finished classifier run and reproduces the numbers; compared with
    # itself (same scans, same seeds), every paired difference is exactly 0, here with the
    # intervals of the mean over seeds (which needs no new run).
    assert main([*argv, "--compare-to", str(out), "--interval", "mean"]) == 0
    assert capsys.readouterr().out.count("reused") == 9
    again = json.loads((out / "report.json").read_text())
    assert again["summary"] == summary
    assert again["uncertainty"]["interval"] == "mean" and again["comparison"]["interval"] == "mean"
    assert "the mean over seeds drawn with replacement" in (out / "report.md").read_text()
    for level in ("scan", "exam"):
        for protocol in ("TSTR", "TRSTR"):
            d = again["comparison"][level][protocol]["accuracy"]
            assert (d["mean"], d["low"], d["high"]) == (0.0, 0.0, 0.0)
    assert "Paired comparison with" in (out / "report.md").read_text()
    # ... and so is every image-by-image difference of the synthetic sets (TRTS, anatomy, FID, ...).
    paired = again["comparison"]["synthetic"]
    assert paired["n_pairs"] == summary["n_synthetic"] and paired["unpaired"] == {"ours": 0, "theirs": 0}
    assert paired["measures"]["fid"]["ours"] == pytest.approx(summary["fid"])
    assert paired["measures"]["trts"]["ours"] == pytest.approx(trts["overall"])
    for name, m in paired["measures"].items():
        if m["difference"] is not None:
            assert (m["difference"], m["low"], m["high"]) == (0.0, 0.0, 0.0), name
    assert "Synthetic sets image by image against" in (out / "report.md").read_text()


def _expect_error(tmp_path, real, synthetic, match):
    with pytest.raises(ValueError, match=match):
        run_evaluation(real, synthetic, tmp_path / "out", seeds=[0], resolution=SIZE)
    assert not (tmp_path / "out" / "report.json").exists()


def test_differing_label_vocabularies_are_refused(tmp_path):
    other = tiny_synthetic().cast_column("label", ClassLabel(names=["normal", "nevus", "nevus_fluid", "melanoma"]))
    _expect_error(tmp_path, tiny_real(), other, r"Label vocabularies differ: real has \['healthy'.*synthetic has \['normal'")


def test_missing_test_split_is_refused(tmp_path):
    real = DatasetDict({"train": tiny_real()["train"], "validation": tiny_real()["validation"]})
    _expect_error(tmp_path, real, tiny_synthetic(), r"needs \['train', 'test'\].*patient-held-out")


def test_class_absent_on_one_side_is_refused(tmp_path):
    no_melanoma = tiny_synthetic().filter(lambda label: label != 3, input_columns="label")
    _expect_error(tmp_path, tiny_real(), no_melanoma, r"\['melanoma'\] have no images in synthetic")


def test_images_of_another_size_are_refused(tmp_path):
    bigger = DatasetDict({"train": rows_to_dataset(_synthetic_rows(4, seed=2, size=(64, 128)))})
    _expect_error(tmp_path, tiny_real(), bigger, r"differ in size.*real\['train'\]: 32x64.*synthetic\['train'\]: 64x128")


def test_cli_prints_one_clear_error_line(tmp_path, capsys):
    real = DatasetDict({"train": tiny_real()["train"]})
    real_dir = save_dataset_dict(real, tmp_path / "real-no-test")
    syn_dir = save_dataset_dict(tiny_synthetic(), tmp_path / "synthetic")
    capsys.readouterr()  # drop the progress bars of saving
    code = main(["evaluate", "--real", str(real_dir), "--synthetic", str(syn_dir), "--out", str(tmp_path / "o")])
    stderr = capsys.readouterr().err
    err = [line for line in stderr.splitlines() if line.startswith("medicraft")]
    assert code == 2 and len(err) == 1 and err[0].startswith("medicraft evaluate: error: The real dataset has splits")
    assert "'test'" in err[0] and "Traceback" not in stderr


def test_same_seed_same_classifier():
    from medicraft_hf.evaluation.classifier import ClassifierSettings, embed_and_predict, train_classifier
    from medicraft_hf.evaluation.inputs import to_image_set

    images = to_image_set(tiny_real()["train"].select(range(40)), SIZE, "real/train")
    settings = ClassifierSettings(epochs=1, batch_size=8)
    a = embed_and_predict(train_classifier(images, CLASS_NAMES, SIZE, settings, seed=5), images)
    b = embed_and_predict(train_classifier(images, CLASS_NAMES, SIZE, settings, seed=5), images)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[0].shape == (40, settings.hidden_size) and np.allclose(a[1].sum(1), 1, atol=1e-5)


def test_pretrained_checkpoint_gets_a_new_head_and_rgb_input(tmp_path):
    from transformers import ViTConfig, ViTForImageClassification

    from medicraft_hf.evaluation.classifier import ClassifierSettings, embed_and_predict, train_classifier
    from medicraft_hf.evaluation.inputs import to_image_set

    # A stand-in for an ImageNet checkpoint: RGB, square input, 10 labels, saved as safetensors.
    config = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=64, num_labels=10)  # fmt: skip
    ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    images = to_image_set(tiny_real()["train"].select(range(24)), SIZE, "real/train")
    settings = ClassifierSettings(epochs=1, batch_size=8, model_name_or_path=str(tmp_path / "vit"))
    model = train_classifier(images, CLASS_NAMES, SIZE, settings, seed=0)
    assert model.config.num_labels == 4 and model.config.id2label[3] == "melanoma"
    features, probs = embed_and_predict(model, images)
    assert features.shape == (24, 32) and probs.shape == (24, 4)


def test_compare_to_needs_a_report_folder_and_fails_before_training(tmp_path):
    with pytest.raises(FileNotFoundError, match="No predictions.json in"):
        run_evaluation(tiny_real(), tiny_synthetic(), tmp_path / "out", seeds=[0], resolution=SIZE,
                       compare_to=tmp_path / "elsewhere")
    assert not (tmp_path / "out").exists()
