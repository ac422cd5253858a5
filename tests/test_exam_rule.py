"""The exam rule (`evaluation.exam_rule`): its evidence, thresholds and decisions on constructed
exams whose right diagnosis is known by construction, and its level in the intervals; and the
benchmark classifier's vertical-shift augmentation, chosen with it (docs/benchmark.md)."""

import numpy as np
import pytest

from medicraft_hf.evaluation.exam_rule import applies_to, best_threshold, decide, exam_evidence, fit, rule_exam_probs
from medicraft_hf.evaluation.uncertainty import uncertainty_report
from medicraft_hf.schema import CLASS_NAMES

HEALTHY_PLANE = [0.85, 0.05, 0.05, 0.05]
NEVUS_PLANE = [0.10, 0.70, 0.15, 0.05]
FLUID_PLANE = [0.10, 0.25, 0.60, 0.05]
MELANOMA_PLANE = [0.10, 0.15, 0.10, 0.65]


def exam(label, lesion_planes=(), planes=12):
    """Probabilities of an exam's planes: healthy-looking, except the ones given (a lesion off the
    fovea shows in a few planes only)."""
    rows = [HEALTHY_PLANE] * (planes - len(lesion_planes)) + list(lesion_planes)
    return np.array(rows, dtype=float), [CLASS_NAMES.index(label)] * planes


def cohort(prefix, spec):
    probs, labels, ids = [], [], []
    for e, (label, lesion_planes) in enumerate(spec):
        p, y = exam(label, lesion_planes)
        probs.append(p)
        labels += y
        ids += [f"{prefix}{e}"] * len(y)
    return np.concatenate(probs), np.array(labels), ids


SPEC = [("healthy", ()), ("nevus", [NEVUS_PLANE] * 4), ("nevus_fluid", [NEVUS_PLANE] * 2 + [FLUID_PLANE] * 2),
        ("melanoma", [MELANOMA_PLANE] * 5)] * 3


def test_evidence_reads_the_most_lesioned_planes_by_hand():
    probs, labels, ids = cohort("e", SPEC[:4])
    ev = exam_evidence(probs, labels, ids, CLASS_NAMES)
    assert ev.order == ["e0", "e1", "e2", "e3"] and ev.labels.tolist() == [0, 1, 2, 3]
    # lesion: mean of 1 - p(healthy) over the top 3 planes
    assert ev.lesion == pytest.approx([0.15, 0.90, 0.90, 0.90])
    assert ev.melanoma.tolist() == [False, False, False, True]
    # fluid share of the top planes: the nevus_fluid exam's fluid plane 0.60 / 0.85
    assert ev.fluid[2] == pytest.approx(0.60 / 0.85) and ev.fluid[1] == pytest.approx(0.15 / 0.85)


def test_each_fluid_read_by_hand():
    # fluid in two of the three lesion planes, then in one of three
    probs, labels, ids = cohort("e", [("nevus_fluid", [NEVUS_PLANE, FLUID_PLANE, FLUID_PLANE]),
                                      ("nevus_fluid", [FLUID_PLANE, NEVUS_PLANE, NEVUS_PLANE])])
    fluid, none = 0.60 / 0.85, 0.15 / 0.85
    want = {"max": [fluid, fluid], "second": [fluid, none], "mean": [(none + 2 * fluid) / 3, (fluid + 2 * none) / 3]}
    for read, values in want.items():
        assert exam_evidence(probs, labels, ids, CLASS_NAMES, fluid_read=read).fluid == pytest.approx(values)
    with pytest.raises(ValueError, match="fluid read 'min'"):
        exam_evidence(probs, labels, ids, CLASS_NAMES, fluid_read="min")


def test_a_mean_of_planes_calls_an_eccentric_nevus_healthy_and_the_rule_does_not():
    val, test = cohort("v", SPEC), cohort("t", SPEC)
    mean_call = test[0][:12 * 4].reshape(4, 12, 4).mean(1).argmax(1)
    assert mean_call.tolist() == [0, 0, 0, 0]  # the mean sees healthy planes everywhere
    probs, labels, order = rule_exam_probs(*val, *test, CLASS_NAMES)
    assert probs.shape == (12, 4) and (probs.sum(1) == 1).all()
    assert (probs.argmax(1) == labels).all() and order[:2] == ["t0", "t1"]


def test_thresholds_sit_midway_and_decisions_follow_them():
    assert best_threshold(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1], bool)) == pytest.approx(0.5)
    # negatives 0.1, 0.5, positives 0.3, 0.9: thresholds 0.2 and 0.7 tie at 0.75; of an even number
    # of tied candidates the upper middle one is kept
    assert best_threshold(np.array([0.1, 0.5, 0.3, 0.9]), np.array([0, 0, 1, 1], bool)) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="both sides"):
        best_threshold(np.array([0.1, 0.2]), np.array([1, 1], bool))
    val = cohort("v", SPEC)
    t_lesion, t_fluid = fit(exam_evidence(*val, CLASS_NAMES), CLASS_NAMES)
    assert 0.15 < t_lesion < 0.90 and 0.15 / 0.85 < t_fluid < 0.60 / 0.85
    ev = exam_evidence(*cohort("t", SPEC[:4]), CLASS_NAMES)
    assert decide(ev, 0.95, t_fluid, CLASS_NAMES).tolist() == [0, 0, 0, 0]  # nothing is lesion enough
    assert decide(ev, t_lesion, 0.0, CLASS_NAMES).tolist() == [0, 2, 2, 3]  # every non-melanoma lesion has fluid


def test_rule_needs_its_classes_and_every_one_in_validation():
    assert applies_to(CLASS_NAMES) and not applies_to(["normal", "drusen", "cnv", "dme"])
    no_fluid = cohort("v", [s for s in SPEC if s[0] != "nevus_fluid"])
    with pytest.raises(ValueError, match=r"no exam of \['nevus_fluid'\]"):
        fit(exam_evidence(*no_fluid, CLASS_NAMES), CLASS_NAMES)


def test_uncertainty_report_has_the_rule_level_without_auc():
    val, test = cohort("v", SPEC), cohort("t", SPEC)
    predictions = {"class_names": list(CLASS_NAMES), "image_ids": [f"i{k}" for k in range(len(test[1]))],
                   "labels": test[1].tolist(), "patient_ids": test[2], "exam_ids": test[2], "shows_label": None,
                   "runs": {"TRTR": [test[0].tolist()]},
                   "validation": {"labels": val[1].tolist(), "exam_ids": val[2], "runs": {"TRTR": [val[0].tolist()]}}}
    report = uncertainty_report(predictions, n_boot=20)
    rule = report["exam_rule"]
    assert rule["n"] == 12 and rule["TRTR"]["balanced_accuracy"]["mean"] == 1.0
    assert "auc_ovr" not in rule["TRTR"] and "recall_2" in rule["TRTR"]  # decisions carry no ranking
    assert report["exam"]["TRTR"]["balanced_accuracy"]["mean"] == 0.25  # the mean read-out: all healthy


def test_vertical_shift_moves_rows_and_repeats_the_edge_rows():
    import torch

    from medicraft_hf.evaluation.classifier import ClassifierSettings, GrayscaleCollator, build_vit_config, shift_rows

    x = torch.arange(2 * 5 * 2, dtype=torch.float32).reshape(2, 1, 5, 2)  # rows 0..4 of two images
    out = shift_rows(x, torch.tensor([2, -1]))
    assert out[0, 0, :, 0].tolist() == [0, 0, 0, 2, 4]  # down by 2: the top row repeats
    assert out[1, 0, :, 0].tolist() == [12, 14, 16, 18, 18]  # up by 1: the bottom row repeats
    assert torch.equal(shift_rows(x, torch.tensor([0, 0])), x)
    config = build_vit_config(["a", "b"], (32, 64), ClassifierSettings())
    assert config.patch_size == 2  # height // 16
    rows = [{"image": np.tile(np.arange(32, dtype=np.uint8)[:, None] * 8, (1, 64)), "label": 0}] * 8
    torch.manual_seed(0)
    shifted = GrayscaleCollator(config, vshift=0.1)(rows)["pixel_values"]
    torch.manual_seed(0)
    again = GrayscaleCollator(config, vshift=0.1)(rows)["pixel_values"]
    assert torch.equal(shifted, again)  # the Trainer's seed fixes the shifts
    moved = [int(round((float(s[0, 10, 0]) + 1) * 127.5 / 8)) - 10 for s in shifted]
    assert max(abs(m) for m in moved) <= 3 and len(set(moved)) > 1  # up to 0.1 x 32 rows, not all alike
