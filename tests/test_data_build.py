"""rows -> Dataset (conversion, validation), patient-level split, save -> load_dataset, card."""

from __future__ import annotations

import io

import numpy as np
import pytest
from datasets import DatasetDict, load_dataset
from PIL import Image

from medicraft_hf.cards.dataset_card import dataset_card
from medicraft_hf.data.build import build_dataset_dict, rows_to_dataset, save_dataset_dict
from medicraft_hf.data.images import load_image, read_image
from medicraft_hf.data.load import load_oct_dataset
from medicraft_hf.data.problems import InvalidInputError, MissingPatientIdError, Problems
from medicraft_hf.data.split import check_no_patient_leakage, split_by_patient
from medicraft_hf.schema import oct_features
from tests.data_inputs import bscan


def phantomish_rows(num_patients=24, planes=3, class_names=("healthy", "nevus", "nevus_fluid", "melanoma")):
    rows = []
    for p in range(num_patients):
        for k in range(planes):
            rows.append({"image": bscan(1000 * p + k), "label": class_names[p % len(class_names)],
                         "patient_id": f"p-{p:03d}", "exam_id": f"e-{p:03d}", "eye": "OD",
                         "plane_deg": 30.0 * k, "source": "phantom"})
    return rows


def test_16bit_rescaled_by_actual_range_and_rgb_to_luminance(tmp_path):
    ramp = (np.arange(16 * 32).reshape(16, 32) * 3 + 1000).astype(np.uint16)  # a 12-bit range inside 16 bits
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    gray = np.asarray(read_image(tmp_path / "deep.png"))
    assert gray.dtype == np.uint8 and gray.min() == 0 and gray.max() == 255  # not clipped to 255 everywhere
    expected = np.round((ramp - 1000.0) * 255.0 / (ramp.max() - 1000.0))
    assert np.abs(gray.astype(float) - expected).max() <= 1
    assert np.all(np.diff(gray.ravel().astype(int)) >= 0)  # order of intensities kept

    rgb = np.zeros((16, 32, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    lum = np.asarray(read_image(tmp_path / "rgb.png"))
    assert lum.shape == (16, 32) and abs(int(lum[0, 0]) - round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)) <= 1
    assert np.asarray(load_image(np.full((4, 4), 0.5))).max() == 128  # float in [0, 1] scaled, not stretched


def test_rows_to_dataset_schema_and_hash_ids():
    ds = rows_to_dataset(phantomish_rows(4, 2))
    assert ds.features == oct_features()
    row = ds[0]
    assert row["image"].mode == "L" and row["image"].size == (32, 16)
    assert np.array_equal(np.asarray(row["image"]), bscan(0))
    assert row["image_id"].startswith("img-") and len(set(ds["image_id"])) == len(ds)
    assert row["label"] == 0 and ds[2]["label"] == 1 and row["plane_deg"] == 0.0
    assert rows_to_dataset([{**phantomish_rows(1, 1)[0], "label": np.int64(3)}])[0]["label"] == 3


def test_bad_rows_all_named_then_skipped_with_report(tmp_path):
    good = phantomish_rows(4, 2)
    (tmp_path / "trunc.png").write_bytes(_png(bscan(7))[:60])
    (tmp_path / "junk.png").write_bytes(b"this is not an image")
    bad = [
        {"image": bscan(0), "label": "healthy", "patient_id": "x", "source": "real", "origin": "dup.png"},
        {"image": bscan(99), "label": "tumour", "patient_id": "y", "source": "real", "origin": "unknown_label.png"},
        {"image": str(tmp_path / "trunc.png"), "label": "nevus", "patient_id": "z", "source": "real"},
        {"image": str(tmp_path / "junk.png"), "label": "nevus", "patient_id": "z", "source": "real"},
        {"image": bscan(98, 20, 32), "label": "nevus", "patient_id": "w", "source": "real", "origin": "odd_size.png"},
    ]
    with pytest.raises(InvalidInputError) as err:
        rows_to_dataset(good + bad)
    message = str(err.value)
    for name, why in [("dup.png", "duplicate"), ("unknown_label.png", "tumour"), ("trunc.png", "truncated"),
                      ("junk.png", "not a readable image"), ("odd_size.png", "20x32")]:
        line = next(ln for ln in message.splitlines() if name in ln)
        assert why in line, line
    assert "--skip-invalid" in message and "--size" in message

    problems = Problems()
    ds = rows_to_dataset(good + bad, skip_invalid=True, problems=problems)
    assert len(ds) == len(good) and len(problems) == 5
    problems.write_report(tmp_path / "skipped.csv")
    report = (tmp_path / "skipped.csv").read_text()
    assert all(n in report for n in ("dup.png", "unknown_label.png", "trunc.png", "junk.png", "odd_size.png"))

    # With a size, mixed sizes are resized instead of rejected.
    resized = rows_to_dataset(good + [bad[-1]], size=(8, 16))
    assert {im.size for im in resized["image"]} == {(16, 8)}


def _png(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_split_by_patient_stratified_deterministic_no_leakage():
    ds = rows_to_dataset(phantomish_rows(40, 3))
    a, b = split_by_patient(ds, seed=0), split_by_patient(ds, seed=0)
    assert list(a) == ["train", "validation", "test"]
    assert {s: a[s]["image_id"] for s in a} == {s: b[s]["image_id"] for s in b}
    c = split_by_patient(ds, seed=1)
    assert set(a["test"]["patient_id"]) != set(c["test"]["patient_id"])
    # 10 patients per class -> 7 / 1-2 / 1-2 per class; every class in every split
    for split in a.values():
        assert set(split["label"]) == {0, 1, 2, 3}
    patients = {s: set(a[s]["patient_id"]) for s in a}
    assert len(patients["train"]) == 28 and sum(map(len, patients.values())) == 40
    assert not patients["train"] & patients["test"] and not patients["train"] & patients["validation"]
    check_no_patient_leakage(a)

    leaky = DatasetDict({"train": ds.select(range(0, 6)), "test": ds.select(range(5, 9))})
    with pytest.raises(ValueError, match=r"Leakage: 1 patient\(s\).*p-001 in \['test', 'train'\]"):
        check_no_patient_leakage(leaky)


def test_rows_without_patient_are_own_patients_and_card_warns():
    rows = phantomish_rows(8, 1)
    for row in rows:
        row["patient_id"] = None
    with pytest.raises(MissingPatientIdError, match=r"8 of 8 image\(s\) have no patient id(.|\n)*split_by=\"image\""):
        split_by_patient(rows_to_dataset(rows), fractions={"train": 0.5, "test": 0.5})  # never by image unasked
    with pytest.warns(UserWarning, match="no patient_id"):
        dsdict = split_by_patient(rows_to_dataset(rows), fractions={"train": 0.5, "test": 0.5}, split_by="image")
    assert sum(map(len, dsdict.values())) == 8
    card = dataset_card(dsdict, name="no-ids", source="test")
    assert "have no patient id" in card.text
    # The card says the split is by image, and claims no patient-level split.
    assert "**by image**, not by patient" in card.text and "**by patient**" not in card.text
    assert "exactly one split" not in card.text

    with pytest.raises(MissingPatientIdError) as err:  # the builder names the rows (their files, here origins)
        build_dataset_dict([dict(r, origin=f"scan{i}.png") for i, r in enumerate(rows)], seed=0)
    assert all(f"scan{i}.png" in str(err.value) for i in range(8))

    # Some rows with an id, some without: those with one still stay together, and the card says both.
    mixed = phantomish_rows(8, 2)
    for row in mixed[:4]:
        row["patient_id"] = None
    with pytest.warns(UserWarning, match="4 row"):
        dsdict = build_dataset_dict(mixed, split_by="image", fractions={"train": 0.5, "test": 0.5})
    check_no_patient_leakage(dsdict)
    text = dataset_card(dsdict, name="mixed", source="test").text
    assert "**by image**: each was split as its own patient" in text and "4 " in text and "without id" in text


def test_save_load_roundtrip_keeps_custom_label_order(tmp_path):
    names = ["zeta", "alpha", "mid"]  # not alphabetical: the order must survive
    dsdict = build_dataset_dict(phantomish_rows(18, 2, class_names=names), names, seed=3)
    card = dataset_card(dsdict, name="my-org/oct-demo", source="unit test", license="cc-by-4.0",
                        extra_sections={"Generation settings": "scheduler: dpmsolver++"})
    out = save_dataset_dict(dsdict, tmp_path / "oct-demo", card=card)
    assert sorted(p.name.split("-")[0] for p in (out / "data").glob("*.parquet")) == ["test", "train", "validation"]

    plain = load_dataset(str(out))  # plain datasets, no medicraft code
    assert plain["train"].features["label"].names == names
    assert {s: len(d) for s, d in plain.items()} == {s: len(d) for s, d in dsdict.items()}
    back = load_oct_dataset(out)
    assert back["test"]["image_id"] == dsdict["test"]["image_id"]
    assert np.array_equal(np.asarray(back["train"][0]["image"]), np.asarray(dsdict["train"][0]["image"]))

    text = (out / "README.md").read_text()
    for needle in ("license: cc-by-4.0", "**by patient**", "salted one-way hashes", 'load_dataset("my-org/oct-demo")',
                   "## Generation settings", "| 0: `zeta` |", "**patients**"):
        assert needle in text, needle
    train_zeta = sum(1 for label in dsdict["train"]["label"] if label == 0)
    assert f"| 0: `zeta` | {train_zeta} |" in text

    # Saving again over a saved dataset is allowed, and loading then gives the new rows (not
    # the `datasets` cache of the folder's first contents); over anything else it is refused.
    other = build_dataset_dict(phantomish_rows(18, 2, class_names=names), names, seed=4)
    assert other["test"]["image_id"] != dsdict["test"]["image_id"]
    save_dataset_dict(other, out)
    assert load_oct_dataset(out)["test"]["image_id"] == other["test"]["image_id"]
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a saved dataset"):
        save_dataset_dict(dsdict, tmp_path / "precious")
    with pytest.raises(ValueError, match="Leakage"):
        save_dataset_dict(DatasetDict({"train": dsdict["train"], "test": dsdict["train"]}), tmp_path / "leak")


def test_empty_class_is_an_error():
    rows = phantomish_rows(6, 1, class_names=("healthy", "nevus"))
    with pytest.raises(InvalidInputError, match=r"\['melanoma'\] have no images"):
        build_dataset_dict(rows, ("healthy", "nevus", "melanoma"))


def test_interrupted_build_resumes_from_finished_chunks(tmp_path):
    files = []
    for i in range(10):
        files.append(tmp_path / f"scan{i}.png")
        Image.fromarray(bscan(500 + i)).save(files[-1])
    rows = [{"image": str(f), "label": i % 2, "patient_id": f"p{i // 2}", "source": "real"} for i, f in enumerate(files)]

    def interrupted():
        for i, row in enumerate(rows):
            if i == 7:
                raise KeyboardInterrupt
            yield row

    work = tmp_path / "work"
    with pytest.raises(KeyboardInterrupt):
        rows_to_dataset(interrupted(), ["a", "b"], work_dir=work, chunk_size=3)
    assert sorted(p.name for p in work.glob("chunk-*.json")) == ["chunk-00000.json", "chunk-00001.json"]
    files[1].unlink()  # in a finished chunk: a resumed build does not read it again
    resumed = rows_to_dataset(rows, ["a", "b"], work_dir=work, chunk_size=3)
    assert resumed["image_id"] == rows_to_dataset(
        [dict(r, image=bscan(500 + i)) for i, r in enumerate(rows)], ["a", "b"])["image_id"]
    with pytest.raises(ValueError, match="other settings"):
        rows_to_dataset(rows, ["a", "b"], work_dir=work, chunk_size=4)


def test_small_datasets_give_every_split_a_patient(tmp_path):
    # 6 patients in 3 classes (2 each) used to split 36/36/0 images: every small class skipped test.
    names = ("a", "b", "c")
    dsdict = split_by_patient(rows_to_dataset(phantomish_rows(6, 2, class_names=names), names), seed=0)
    assert list(dsdict) == ["train", "validation", "test"]
    assert [len(set(d["patient_id"])) for d in dsdict.values()] == [3, 2, 1]
    # 3 patients in 3 classes: no class reaches two splits, still one patient per split.
    dsdict = split_by_patient(rows_to_dataset(phantomish_rows(3, 1, class_names=names), names), seed=0)
    assert [len(d) for d in dsdict.values()] == [1, 1, 1]
    # Fewer patients than splits: a clear error, and fine with fewer splits.
    two = rows_to_dataset(phantomish_rows(2, 1, class_names=names[:2]), names[:2])
    with pytest.raises(ValueError, match=r"2 patient\(s\) cannot fill the 3 splits"):
        split_by_patient(two)
    assert [len(d) for d in split_by_patient(two, fractions={"train": 0.5, "test": 0.5}).values()] == [1, 1]

    # The phantom as the issue made it: 6 patients, 3 classes, 12 B-scans each.
    from medicraft_hf.cli import main

    out = tmp_path / "phantom"
    assert main(["phantom", "--num-patients", "6", "--classes", "healthy,nevus,melanoma", "--size", "32x64",
                 "--class-weights", "healthy=1,nevus=1,melanoma=1", "--out", str(out)]) == 0
    loaded = load_dataset(str(out))
    assert {s: len(d) for s, d in loaded.items()} == {"train": 36, "validation": 24, "test": 12}
    assert "`phantom-s<seed>-<patient>-<plane>`" in (out / "README.md").read_text()


def test_card_says_what_image_id_is():
    from dataclasses import fields

    from medicraft_hf.data.images import pixel_hash
    from medicraft_hf.generate import GenerationSettings

    built = build_dataset_dict(phantomish_rows(12, 1), seed=0)
    row = built["train"][0]
    assert row["image_id"] == "img-" + pixel_hash(row["image"])[:16]  # what the card says
    text = dataset_card(built, name="real", source="test").text
    assert "`image_id` is `img-<16 hex digits>`: the start of a SHA-256 of the decoded pixels" in text
    assert "synthetic-<run tag>" not in text

    rows = phantomish_rows(8, 1)
    for i, r in enumerate(rows):  # as medicraft_hf.generate.sample_block writes them
        image_id = f"synthetic-0123abcd-{i:07d}"
        r.update(source="synthetic", image_id=image_id, patient_id=image_id, exam_id=image_id)
    text = dataset_card(DatasetDict({"train": rows_to_dataset(rows)}), name="syn", source="synthetic: tiny").text
    assert "`image_id` is `synthetic-<run tag>-<index>`" in text and "not of the pixels" in text
    assert "SHA-256 of the decoded pixels" not in text and "hash of the pixels" not in text
    # The run tag hashes GenerationSettings: the card names each of its fields.
    named = {"model_id": "model id", "model_revision": "revision", "scheduler": "scheduler",
             "num_inference_steps": "steps", "guidance_scale": "guidance scale", "seed": "base seed",
             "class_names": "class names", "image_size": "image size"}
    assert {f.name for f in fields(GenerationSettings)} == set(named)
    assert all(words in text for words in named.values())
