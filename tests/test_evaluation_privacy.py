"""Memorization audit on phantom scans: planted copies are flagged, new patients are not."""

import numpy as np

from medicraft_hf.data.phantom import phantom_patients, render_bscan
from medicraft_hf.evaluation.inputs import ImageSet
from medicraft_hf.evaluation.privacy import memorization_audit
from medicraft_hf.schema import RADIAL_PLANES_DEG

SIZE = (64, 128)  # the evaluation resolution the thresholds were measured at


def _scans(patients, first, name, planes=RADIAL_PLANES_DEG[::2], noise=0):
    images, labels, ids = [], [], []
    for i, p in enumerate(patients):
        for j, plane in enumerate(planes):
            images.append(render_bscan(p, plane, SIZE, seed=[noise, first + i, 2, j])[0])
            labels.append(0)
            ids.append(f"{name}-{first + i}-{int(plane)}")
    return ImageSet(np.stack(images), np.asarray(labels), ids, name)


def _features(images: ImageSet) -> np.ndarray:
    # Any embedding works for the audit's candidates; coarse pooled pixels stand in for the ViT.
    return images.images.reshape(len(images), 8, 8, 8, 16).mean(axis=(2, 4)).reshape(len(images), -1)


def test_audit_flags_planted_copies_and_not_new_patients():
    patients = phantom_patients(20, seed=3)
    train = _scans(patients[:12], 0, "train")
    held_out = _scans(patients[12:16], 12, "held")
    clean = _scans(patients[16:], 16, "syn")

    report = memorization_audit(train, _features(train), held_out, _features(held_out), clean, _features(clean))
    assert report["near_copies"] == 0 and report["near_copy_rate"] == 0.0
    assert report["held_out_false_positive_rate"] <= 0.05
    assert report["n_synthetic"] == len(clean) == len(report["pairs"])

    # Plant an exact copy of a training scan, a noisy copy and a copy shifted by one pixel.
    exact = train.subset([5])
    noisy = train.subset([20])
    noise = np.random.default_rng(0).normal(0, 8, noisy.images.shape)
    noisy.images = np.clip(noisy.images + noise, 0, 255).astype(np.uint8)
    shifted = train.subset([33])
    shifted.images = np.roll(shifted.images, 1, axis=2)
    leaky = ImageSet.concat([clean, exact, noisy, shifted], name="syn")
    report = memorization_audit(train, _features(train), held_out, _features(held_out), leaky, _features(leaky))

    n = len(clean)
    flagged = {p["synthetic_index"]: p for p in report["pairs"] if p["flagged"]}
    assert set(flagged) == {n, n + 1, n + 2}, report["pairs"][:5]
    assert [flagged[n + k]["train_image_id"] for k in range(3)] == [train.image_ids[i] for i in (5, 20, 33)]
    assert flagged[n]["ssim"] > 0.999
    assert report["near_copies"] == 3 and report["near_copy_rate"] == 3 / len(leaky)
    assert report["pairs"][0]["synthetic_index"] == n  # most similar first


def test_fresh_speckle_on_a_memorized_anatomy_is_closer_than_new_patients():
    patients = phantom_patients(16, seed=4)
    train = _scans(patients[:12], 0, "train")
    held_out = _scans(patients[12:], 12, "held")
    # The same anatomy re-rendered with new speckle: not a pixel copy, but suspicious.
    respeckled = _scans(patients[:2], 0, "again", planes=RADIAL_PLANES_DEG[::2][:2], noise=99)
    report = memorization_audit(train, _features(train), held_out, _features(held_out), respeckled, _features(respeckled))
    assert report["near_copies"] == 0
    assert report["closer_than_held_out_rate"] >= 0.75
    assert report["synthetic_ssim"]["q50"] > report["held_out_ssim"]["q99"]
