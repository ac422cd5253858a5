"""The procedural OCT phantom: schema rows, anatomy facts, lesions, defects, determinism, CLI."""

import json
from collections import Counter

import numpy as np
import pytest

from medicraft_hf.data.phantom import (
    DEFECTS,
    PhantomPatient,
    phantom_bscan,
    phantom_patients,
    phantom_rows,
    render_bscan,
)
from medicraft_hf.schema import CLASS_NAMES, RADIAL_PLANES_DEG, oct_features

SMALL = (64, 128)


@pytest.fixture(scope="module")
def small_rows():
    return list(phantom_rows(4, seed=3, size=SMALL))


def test_rows_follow_the_schema_with_12_radial_planes_per_exam(small_rows):
    assert len(small_rows) == 4 * 12
    features = oct_features()
    for row in small_rows:
        assert set(row) == set(features)
        assert row["source"] == "phantom" and row["eye"] in ("OD", "OS")
        assert row["image"].mode == "L" and row["image"].size == (SMALL[1], SMALL[0])
        assert 0 <= row["label"] < len(CLASS_NAMES)
        assert row["model_id"] is None and row["seed"] is None  # provenance is for synthetic rows
    by_patient = Counter(r["patient_id"] for r in small_rows)
    assert sorted(by_patient) == [f"phantom-{i:04d}" for i in range(1, 5)] and set(by_patient.values()) == {12}
    for pid in by_patient:
        rows = [r for r in small_rows if r["patient_id"] == pid]
        assert [r["plane_deg"] for r in rows] == list(RADIAL_PLANES_DEG)
        assert len({r["label"] for r in rows}) == len({r["exam_id"] for r in rows}) == len({r["eye"] for r in rows}) == 1
    assert len({r["image_id"] for r in small_rows}) == len(small_rows)


def test_ground_truth_is_json_with_fovea_surfaces_and_lesion(small_rows):
    for row in small_rows:
        gt = json.loads(row["ground_truth"])
        assert gt["size"] == list(SMALL) and gt["plane_deg"] == row["plane_deg"]
        assert abs(gt["fovea_x"] - SMALL[1] / 2) < 0.1 * SMALL[1]  # every radial plane crosses the fovea
        assert gt["fovea_depth_px"][0] >= 2  # the pit is visible even at 64x128
        ilm, rpe = np.array(gt["ilm_y"]), np.array(gt["rpe_y"])
        assert len(gt["surface_x"]) == len(ilm) == len(rpe)
        assert (rpe > ilm + 5).all() and (ilm > 0).all()  # RPE below the ILM, retina in the frame
        if CLASS_NAMES[row["label"]] == "healthy":
            assert gt["lesion"] is None


def test_same_seed_same_pixels_other_seed_other_pixels():
    a = [np.asarray(r["image"]) for r in phantom_rows(1, seed=5, size=SMALL)]
    b = [np.asarray(r["image"]) for r in phantom_rows(1, seed=5, size=SMALL)]
    c = [np.asarray(r["image"]) for r in phantom_rows(1, seed=6, size=SMALL)]
    assert all((x == y).all() for x, y in zip(a, b))
    assert not all((x == z).all() for x, z in zip(a, c))


def test_layers_follow_the_anatomy_facts_at_256x512():
    image, gt = phantom_bscan("healthy", seed=1, plane_deg=0, size=(256, 512))
    img = image.astype(float)
    xs, ilm, rpe = (np.array(gt[k]) for k in ("surface_x", "ilm_y", "rpe_y"))
    # Away from the fovea: vitreous near-black, RPE the brightest band, ONL (just inside
    # the outer retina) darker than the RNFL, choroid fading with depth.
    cols = [i for i, x in enumerate(xs) if abs(x - gt["fovea_x"]) > 120 and 10 < x < 500]
    um = gt["um_per_px"][0]
    vitreous = np.mean([img[: int(ilm[i]) - 4, xs[i]].mean() for i in cols])
    rnfl = np.mean([img[int(ilm[i]) + 1 : int(ilm[i] + 20 / um), xs[i]].mean() for i in cols])
    rpe_band = np.mean([img[int(rpe[i]) - 1 : int(rpe[i]) + 2, xs[i]].mean() for i in cols])
    onl = np.mean([img[int(rpe[i] - 140 / um) : int(rpe[i] - 100 / um), xs[i]].mean() for i in cols])
    choroid = np.mean([img[int(rpe[i] + 40 / um) : int(rpe[i] + 120 / um), xs[i]].mean() for i in cols])
    deep = img[-20:].mean()
    assert vitreous < 35
    assert rpe_band > rnfl > onl > vitreous
    assert rpe_band > choroid > deep
    # Inner layers vanish at the fovea: the retina is thinnest there.
    thickness = rpe - ilm
    centre = np.argmin(np.abs(xs - gt["fovea_x"]))
    assert thickness[centre] < 0.85 * np.median(thickness)


def test_lesions_move_with_the_plane_and_raise_the_retina():
    patient = PhantomPatient.sample("melanoma", np.random.default_rng(11))
    extents = [render_bscan(patient, plane, SMALL, seed=0)[1]["lesion"] for plane in RADIAL_PLANES_DEG]
    seen = [e["x_range"] for e in extents if e["x_range"] is not None]
    assert len(seen) >= 6  # most planes cross a melanoma
    assert len({tuple(x) for x in seen}) > 1  # its position depends on the angle
    assert max(e["height_px"] for e in extents) > 0.08 * SMALL[0]  # a dome, visible at 64x128
    nevus = PhantomPatient.sample("nevus_fluid", np.random.default_rng(2))
    assert any(render_bscan(nevus, p, SMALL, seed=0)[1]["lesion"]["fluid_x_range"] for p in RADIAL_PLANES_DEG)


def test_class_weights_give_clinic_like_imbalance_and_bad_weights_fail():
    counts = Counter(p.label for p in phantom_patients(20, seed=0))
    assert counts == {"healthy": 8, "nevus": 6, "nevus_fluid": 3, "melanoma": 3}
    counts = Counter(p.label for p in phantom_patients(8, seed=0, class_weights={"healthy": 1, "melanoma": 1}))
    assert counts == {"healthy": 4, "melanoma": 4}
    assert Counter(p.label for p in phantom_patients(4, seed=0, class_weights=[10, 1, 1, 1])).keys() == set(CLASS_NAMES)
    with pytest.raises(ValueError, match="cannot draw"):
        phantom_patients(4, class_names=["healthy", "drusen"])
    with pytest.raises(ValueError, match="not in class_names"):
        phantom_patients(4, class_weights={"cnv": 1.0})
    with pytest.raises(ValueError, match="not all zero"):
        phantom_patients(4, class_weights=[0, 0, 0, 0])
    with pytest.raises(ValueError, match="num_patients"):
        phantom_patients(0)


def test_defects_change_the_fovea_or_the_image():
    clean, gt = phantom_bscan("healthy", seed=4, size=SMALL)
    double = phantom_bscan("healthy", seed=4, size=SMALL, defect="double_fovea")[1]
    assert len(double["fovea_xs"]) == 2 and double["fovea_x"] is None
    assert phantom_bscan("healthy", seed=4, size=SMALL, defect="no_fovea")[1]["fovea_xs"] == []
    flat = phantom_bscan("healthy", seed=4, size=SMALL, defect="flat_fovea")[1]
    assert flat["fovea_depth_px"][0] < 0.75 * gt["fovea_depth_px"][0]
    for defect in ("heavy_noise", "scrambled_layers"):
        broken = phantom_bscan("healthy", seed=4, size=SMALL, defect=defect)[0]
        assert np.abs(broken.astype(float) - clean).mean() > 15
    # Every listed defect is drawn (no name silently renders the clean scan), is recorded in
    # the ground truth, and has the verdict the anatomy check is validated against.
    from medicraft_hf.evaluation.anatomy import EXPECTED_VERDICT

    assert gt["defect"] is None and set(EXPECTED_VERDICT) == {None, *DEFECTS}
    for defect in DEFECTS:
        image, truth = phantom_bscan("healthy", seed=4, size=SMALL, defect=defect)
        assert truth["defect"] == defect
        assert np.abs(image.astype(float) - clean).mean() > 1, defect
    with pytest.raises(ValueError, match="Unknown phantom defect"):
        phantom_bscan(defect="melted")
    with pytest.raises(ValueError, match="too small"):
        phantom_bscan(size=(16, 16))


def test_phantom_command_saves_a_loadable_dataset_split_by_patient(tmp_path):
    from datasets import load_dataset

    from medicraft_hf.cli import main
    from medicraft_hf.data.split import check_no_patient_leakage

    out = tmp_path / "phantom"
    assert main(["phantom", "--num-patients", "8", "--size", "32x64", "--seed", "1", "--out", str(out)]) == 0
    dsdict = load_dataset(str(out))
    assert set(dsdict) == {"train", "validation", "test"}
    assert dsdict["train"].features["label"].names == list(CLASS_NAMES)
    assert sum(len(ds) for ds in dsdict.values()) == 8 * 12
    check_no_patient_leakage(dsdict)
    assert "phantom" in (out / "README.md").read_text()
    assert main(["phantom", "--num-patients", "4", "--size", "32x64", "--class-weights", "healthy",
                 "--out", str(tmp_path / "x")]) == 2
