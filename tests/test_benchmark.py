"""The usefulness benchmark: the benchmark-v1 preset's cohort and class definitions, per-plane
visibility in the ground truth, the scans-that-show-their-label level and AUC of the intervals,
early stopping on the validation split, and the TRTR-only ceiling."""

import json

import numpy as np
import pytest

from medicraft_hf.data.phantom import phantom_rows, plane_shows_label, render_bscan
from medicraft_hf.data.phantom_anatomy import PhantomPatient
from medicraft_hf.data.phantom_presets import PRESETS, get_preset, preset_patients
from medicraft_hf.evaluation.uncertainty import score, uncertainty_report
from medicraft_hf.schema import CLASS_NAMES, RADIAL_PLANES_DEG

SMALL = (32, 64)


@pytest.mark.parametrize("name", ["benchmark-v1", "benchmark-v2"])
def test_benchmark_preset_cohort_is_patient_disjoint_with_enough_test_patients_per_class(name):
    preset = get_preset(name)
    cohort = preset_patients(preset)
    assert list(cohort) == ["train", "validation", "test"]
    numbers = [n for split in cohort.values() for n, _ in split]
    assert len(numbers) == len(set(numbers)) == sum(sum(c.values()) for c in preset.patients.values())
    test_counts = {c: sum(p.label == c for _, p in cohort["test"]) for c in CLASS_NAMES}
    assert sum(test_counts.values()) >= 100 and min(test_counts.values()) >= 20  # >= 1,200 test scans
    assert all(p.definitions == preset.definitions for split in cohort.values() for _, p in split)
    train = [p.label for _, p in cohort["train"]]
    assert train.count("healthy") > 2 * train.count("nevus_fluid")  # clinic-like imbalance stays in train
    # Same preset, same patients.
    again = preset_patients(preset)
    assert [(n, p.label, p.lesion_r_mm) for n, p in again["test"]] == [(n, p.label, p.lesion_r_mm) for n, p in cohort["test"]]
    with pytest.raises(ValueError, match="Unknown phantom preset 'nope'.*benchmark-v1"):
        get_preset("nope")
    assert "benchmark-v1" in PRESETS


def test_clinic_nevus_fluid_shows_its_fluid_in_the_planes_through_it():
    for i in range(8):
        patient = PhantomPatient.sample("nevus_fluid", np.random.default_rng([3, i]), "clinic")
        assert patient.fluid_r_mm - patient.fluid_radius_mm >= 0.75 - 1e-9  # the fovea stays dry
        gts = [render_bscan(patient, plane, SMALL, seed=[i, j])[1] for j, plane in enumerate(RADIAL_PLANES_DEG)]
        shows = [plane_shows_label(gt) for gt in gts]
        assert sum(shows) >= 2, (i, shows)  # every labelled exam shows its fluid in at least one radial line
        for gt, show in zip(gts, shows):
            lesion = gt["lesion"]
            assert gt["definitions"] == "clinic" and show == (lesion["visible"] and lesion["fluid_visible"])
            if lesion["fluid_visible"]:
                assert lesion["fluid_x_range"] is not None


def test_clinic_v2_gives_every_lesion_class_the_same_footprint():
    # Same patient seed, any lesion class: the same disc on the fundus (benchmark-v2's point).
    for i in range(6):
        nevus, fluid, melanoma = (PhantomPatient.sample(c, np.random.default_rng([4, i]), "clinic-v2")
                                  for c in ("nevus", "nevus_fluid", "melanoma"))
        for p in (fluid, melanoma):
            assert (p.lesion_theta_deg, p.lesion_radius_mm, p.lesion_r_mm) == \
                (nevus.lesion_theta_deg, nevus.lesion_radius_mm, nevus.lesion_r_mm)
        assert nevus.fluid_um == 0 and melanoma.lesion_height_um >= 300 > 150 >= nevus.lesion_height_um
        assert fluid.lesion_height_um == nevus.lesion_height_um and fluid.drusen == nevus.drusen  # fluid alone differs
        assert fluid.fluid_r_mm == fluid.lesion_r_mm and fluid.fluid_radius_mm < fluid.lesion_radius_mm  # over the nevus
        # So the planes that show the nevus's body are the same with or without its fluid.
        body = [[render_bscan(p, plane, SMALL, seed=[i, j])[1]["lesion"]["visible"]
                 for j, plane in enumerate(RADIAL_PLANES_DEG)] for p in (nevus, fluid)]
        assert body[0] == body[1] and sum(body[0]) >= 4, body
        shows = [plane_shows_label(render_bscan(fluid, plane, SMALL, seed=[i, j])[1])
                 for j, plane in enumerate(RADIAL_PLANES_DEG)]
        assert sum(shows) >= 2 and all(b for b, s in zip(body[1], shows) if s)  # fluid only where the body shows


def test_study_phantom_ground_truth_has_no_visibility_flags():
    rows = list(phantom_rows(4, seed=3, size=SMALL, class_weights=[1, 1, 1, 1], planes_deg=(0.0,)))
    for row in rows:
        gt = json.loads(row["ground_truth"])
        assert "definitions" not in gt and (gt["lesion"] is None or "visible" not in gt["lesion"])
        assert plane_shows_label(row["ground_truth"]) is None
    assert plane_shows_label(None) is None
    healthy = {"definitions": "clinic", "label": "healthy", "lesion": None}
    assert plane_shows_label(healthy) is True
    missed = {"definitions": "clinic", "lesion": {"type": "nevus_fluid", "visible": True, "fluid_visible": False}}
    assert plane_shows_label(json.dumps(missed)) is False
    with pytest.raises(ValueError, match="Unknown phantom class definitions 'x'"):
        PhantomPatient.sample("nevus", np.random.default_rng(0), "x")


def test_auc_by_hand():
    # class 0 scores: positives 0.9, 0.4; negatives 0.6, 0.2 -> pairs (0.9>0.6, 0.9>0.2, 0.4<0.6, 0.4>0.2) = 3/4
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.2, 0.8]])
    s = score(probs, np.array([0, 0, 1, 1]), 2, auc=True)
    assert s["auc_0"] == pytest.approx(0.75) and s["auc_1"] == pytest.approx(0.75) and s["auc_ovr"] == pytest.approx(0.75)
    assert np.isnan(score(probs, np.array([0, 0, 0, 0]), 2, auc=True)["auc_ovr"])  # one class: undefined


def test_uncertainty_has_a_level_for_the_scans_that_show_their_label():
    # Two exams of two planes: the second plane of exam b misses the lesion and is predicted healthy.
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.9, 0.1]])
    predictions = {"class_names": ["healthy", "nevus"], "image_ids": ["a1", "a2", "b1", "b2"], "labels": [0, 0, 1, 1],
                   "patient_ids": ["a", "a", "b", "b"], "exam_ids": ["a", "a", "b", "b"],
                   "shows_label": [True, True, True, False], "runs": {"TRTR": [probs.tolist()]}}
    u = uncertainty_report(predictions, n_boot=200)
    assert u["scan"]["n"] == 4 and u["scan_shows_label"]["n"] == 3 and u["exam"]["n"] == 2
    # Replicates with both patients: all scans 3/4 right, shown scans 3/3, exams: b's mean (0.6, 0.4) -> wrong.
    full = u["scan_shows_label"]["TRTR"]["accuracy"]
    assert (full["low"], full["high"]) == (1.0, 1.0)
    assert u["scan"]["TRTR"]["recall_1"]["high"] == 0.5 and "auc_ovr" in u["exam"]["TRTR"]
    del predictions["shows_label"]  # real or synthetic rows: no such level
    assert "scan_shows_label" not in uncertainty_report(predictions, n_boot=20)


def test_early_stopping_keeps_the_best_validation_checkpoint():
    from medicraft_hf.evaluation.classifier import ClassifierSettings, embed_and_predict, train_classifier
    from medicraft_hf.evaluation.inputs import ImageSet

    rng = np.random.default_rng(0)
    labels = np.arange(64) % 2
    images = (rng.integers(0, 60, (64, 16, 32)) + 150 * labels[:, None, None]).astype(np.uint8)  # easy: bright = 1
    train = ImageSet(images[:48], labels[:48], [f"t{i}" for i in range(48)], "train")
    validation = ImageSet(images[48:], labels[48:], [f"v{i}" for i in range(16)], "validation")
    settings = ClassifierSettings(max_steps=200, eval_every=4, patience=2, batch_size=8, hidden_size=16, num_heads=2,
                                  num_layers=1)
    record = []
    model = train_classifier(train, ["dark", "bright"], (16, 32), settings, seed=0, validation=validation, record=record)
    r = record[0]
    assert r.stopped_early and r.steps < 200 and r.steps == r.curve[-1][0]
    best = max(v for _, v in r.curve)
    assert r.best_validation_balanced_accuracy == best == 1.0
    assert r.best_step == next(s for s, v in r.curve if v == best) and r.steps == r.best_step + 2 * 4
    _, probs = embed_and_predict(model, validation)  # the best checkpoint came back, not the last one
    assert (probs.argmax(1) == validation.labels).mean() == best


def test_best_checkpoint_is_restored_whole(tmp_path):
    """The stock Trainer (transformers 5.24) restores the embeddings and head of the best checkpoint
    but leaves the encoder at the last step's weights (legacy key names); ours restores all."""
    import torch
    from transformers import TrainingArguments

    from medicraft_hf.evaluation.classifier import BestCheckpointTrainer, ClassifierSettings, build_classifier

    settings = ClassifierSettings(hidden_size=16, num_heads=2, num_layers=1)
    model = build_classifier(["a", "b"], (16, 32), settings)
    best = {k: v.clone() for k, v in model.state_dict().items()}
    model.save_pretrained(tmp_path / "checkpoint-1")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # "later training steps"
    trainer = BestCheckpointTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to="none",
                                                                        use_cpu=True))
    trainer.state.best_model_checkpoint = str(tmp_path / "checkpoint-1")
    trainer._load_best_model()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in best.items())


def test_learned_exam_readout_uses_the_plane_that_shows_the_lesion():
    """Exams of 4 planes; a 'fluid' exam (class 1) shows it in one plane only, so the mean of its
    planes says class 0 and only the read-out fit on the validation exams gets it right."""
    from medicraft_hf.evaluation.uncertainty import exam_predictions, learned_exam_probs

    rng = np.random.default_rng(0)

    def exams(n, prefix):
        probs, labels, ids = [], [], []
        for e in range(n):
            label = e % 2
            planes = np.tile([0.9, 0.1], (4, 1)) + rng.normal(0, 0.02, (4, 2)) * [1, -1]
            if label:
                planes[0] = [0.2, 0.8]  # the one plane through the fluid
            probs.append(planes / planes.sum(1, keepdims=True))
            labels += [label] * 4
            ids += [f"{prefix}{e}"] * 4
        return np.concatenate(probs), np.array(labels), ids

    val, test = exams(20, "v"), exams(10, "t")
    mean, labels, _ = exam_predictions(*test, "mean")
    assert (mean.argmax(1) == labels).mean() == 0.5  # the mean misses every fluid exam
    learned, labels, order = learned_exam_probs(*val, *test, num_classes=2)
    assert order == [f"t{e}" for e in range(10)] and (learned.argmax(1) == labels).all()
    only_class_0 = (val[0][val[1] == 0], val[1][val[1] == 0], [i for i, y in zip(val[2], val[1]) if y == 0])
    with pytest.raises(ValueError, match=r"no exam of class ids \[1\]"):
        learned_exam_probs(*only_class_0, *test, num_classes=2)


def test_preset_refuses_cohort_flags(tmp_path, capsys):
    from medicraft_hf.cli import main

    assert main(["phantom", "--preset", "benchmark-v1", "--num-patients", "10", "--out", str(tmp_path / "b")]) != 0
    assert "--preset benchmark-v1 fixes the cohort; drop --num-patients" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_ceiling_without_synthetic_runs_trtr_alone(tmp_path):
    from datasets import DatasetDict

    from medicraft_hf.data.build import rows_to_dataset
    from medicraft_hf.data.split import split_by_patient
    from medicraft_hf.evaluation.classifier import ClassifierSettings
    from medicraft_hf.evaluation.run import run_evaluation

    rows = phantom_rows(16, seed=1, size=SMALL, class_weights=[1, 1, 1, 1], planes_deg=(0.0, 90.0))
    real = split_by_patient(rows_to_dataset(rows), seed=0, fractions={"train": 0.5, "validation": 0.25, "test": 0.25})
    assert isinstance(real, DatasetDict) and len(set(real["validation"]["label"])) == 4  # the read-out needs every class
    settings = ClassifierSettings(max_steps=6, eval_every=2, patience=1, batch_size=8, hidden_size=16, num_heads=2,
                                  num_layers=1)
    result = run_evaluation(real, None, tmp_path / "ceiling", seeds=[0], resolution=SMALL, settings=settings, n_boot=50)
    assert list(result["usefulness"]) == ["TRTR"] and result["usefulness"]["TRTR"]["runs"][0]["training"]["curve"]
    saved = json.loads((tmp_path / "ceiling" / "report.json").read_text())
    assert set(saved["uncertainty"]) >= {"scan", "exam", "exam_learned"}  # study rows: no scan_shows_label level
    assert "scan_shows_label" not in saved["uncertainty"] and saved["uncertainty"]["exam"]["n"] == 4
    md = (tmp_path / "ceiling" / "report.md").read_text()
    assert "Real-data ceiling (TRTR)" in md and "best validation step" in md

