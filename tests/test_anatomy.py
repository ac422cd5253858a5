"""The anatomy check, validated on phantom scans with known truth (clean and broken)."""

import json

import numpy as np
import pytest
from PIL import Image

from medicraft_hf.data.phantom import PHANTOM_CLASSES, phantom_bscan
from medicraft_hf.evaluation.anatomy import ANATOMY_VERDICTS, EXPECTED_VERDICT, check_anatomy, validate_on_phantom


@pytest.mark.parametrize("size", [(64, 128), (256, 512)])
def test_clean_phantoms_of_every_class_are_ok(size):
    # Lesions (nevus, fluid, a melanoma dome) deform the retina but are not anatomy defects.
    for label in PHANTOM_CLASSES:
        for seed, plane in ((21, 0), (22, 90)):
            result = check_anatomy(phantom_bscan(label, seed=seed, plane_deg=plane, size=size)[0])
            assert result.verdict == "ok", (label, seed, result)
            assert 0.5 < result.score <= 1.0
            assert abs(result.details["fovea_x"] - 0.5) < 0.1


@pytest.mark.parametrize("defect", ["double_fovea", "no_fovea", "heavy_noise", "scrambled_layers"])
def test_each_broken_phantom_gets_its_verdict(defect):
    verdicts = [check_anatomy(phantom_bscan(label, seed=30, size=(64, 128), defect=defect)[0]).verdict
                for label in PHANTOM_CLASSES]
    assert verdicts.count(EXPECTED_VERDICT[defect]) >= 3, verdicts


def test_validation_on_phantom_reports_accuracy_per_category():
    result = validate_on_phantom((64, 128), per_class=2, seed=5)
    assert set(result["accuracy"]) == {"clean", *[d for d in EXPECTED_VERDICT if d]}
    assert sum(sum(row.values()) for row in result["confusion"].values()) == 6 * 4 * 2
    assert result["accuracy"]["clean"] >= 0.85
    assert result["accuracy"]["heavy_noise"] == 1.0
    assert np.mean(list(result["accuracy"].values())) >= 0.75


def test_scores_rank_plausible_above_implausible_and_inputs_are_flexible(tmp_path):
    image = phantom_bscan("healthy", seed=3, size=(64, 128))[0]
    flat = phantom_bscan("healthy", seed=3, size=(64, 128), defect="flat_fovea")[0]
    ok, broken = check_anatomy(image), check_anatomy(flat)
    assert ok.verdict == "ok" and broken.verdict in ("hypoplastic_fovea", "no_fovea")
    assert ok.score > 0.5 > broken.score >= 0.0
    assert set(ANATOMY_VERDICTS) >= {ok.verdict, broken.verdict}
    # PIL, float array in [-1, 1] (a pipeline's "np" output), RGB and a path give one answer.
    path = tmp_path / "scan.png"
    Image.fromarray(image).save(path)
    for form in (Image.fromarray(image), image.astype(np.float32) / 127.5 - 1, np.stack([image] * 3, -1), path):
        assert check_anatomy(form).verdict == "ok"
    json.dumps(ok.to_dict())  # serialisable for reports
    with pytest.raises(ValueError, match="2-D grayscale"):
        check_anatomy(np.zeros(100))


def test_anatomy_check_command_writes_csv_and_summary(tmp_path, capsys):
    from medicraft_hf.cli import main

    folder = tmp_path / "images"
    for label, defect in (("ok", None), ("broken", "heavy_noise")):
        (folder / label).mkdir(parents=True)
        for seed in (1, 2):
            Image.fromarray(phantom_bscan("nevus", seed=seed, size=(64, 128), defect=defect)[0]).save(
                folder / label / f"{seed}.png"
            )
    out = tmp_path / "report"
    assert main(["anatomy-check", str(folder), "--out", str(out)]) == 0
    summary = json.loads((out / "anatomy_summary.json").read_text())
    assert summary["overall"]["n"] == 4
    assert summary["per_label"]["ok"]["counts"]["ok"] == 2
    assert summary["per_label"]["broken"]["counts"]["corrupted"] == 2
    lines = (out / "anatomy.csv").read_text().splitlines()
    assert lines[0].startswith("image_id,label,verdict,score") and len(lines) == 5
    assert "corrupted=2" in capsys.readouterr().out
    assert main(["anatomy-check", str(tmp_path / "missing")]) == 2
