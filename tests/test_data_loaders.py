"""Loaders end to end through `medicraft build`: Kermany tree, CSV manifest, Zeiss .img, OCT DICOM."""

from __future__ import annotations

import csv
import json
import shutil
import warnings
from collections import Counter

import numpy as np
import pytest
from datasets import load_dataset
from PIL import Image

from medicraft_hf.cli import main
from medicraft_hf.data.load import load_oct_dataset
from medicraft_hf.deid import pseudonym
from tests.data_inputs import H, W, bscan, class_folders, kermany_tree, write_oct_dicom, write_zeiss_img


def all_text(out_dir) -> bytes:
    """Every byte the built dataset folder holds (README and parquet shards)."""
    return b"".join(p.read_bytes() for p in sorted(out_dir.rglob("*")) if p.is_file())


def test_kermany_layout_as_distributed(tmp_path, capsys):
    root = kermany_tree(tmp_path / "OCT2017", patients_per_class=5)
    (root / "train" / "NORMAL" / ".DS_Store").write_bytes(b"\0")  # hidden files are ignored
    out = tmp_path / "kermany"
    assert main(["build", str(root), "--from", "kermany", "--out", str(out), "--seed", "1"]) == 0
    ds = load_oct_dataset(out)
    assert ds["train"].features["label"].names == ["CNV", "DME", "DRUSEN", "NORMAL"]
    assert sum(len(d) for d in ds.values()) == 4 * 5 * 2
    # patient ids parsed from the file name, then hashed; Kermany's train/test overlap is gone
    first = pseudonym("1000000")
    splits_of_first = [s for s, d in ds.items() if first in set(d["patient_id"])]
    assert len(splits_of_first) == 1 and len([p for p in ds[splits_of_first[0]]["patient_id"] if p == first]) == 2
    assert b"1000000" not in all_text(out) and b"CNV-1000000" not in all_text(out)
    assert "replaced by a patient-level split" in (out / "README.md").read_text()
    assert "built" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    assert "--skip-invalid" in capsys.readouterr().out


def test_kermany_bad_files_fail_then_skip_with_report(tmp_path, capsys):
    root = kermany_tree(tmp_path / "OCT2017")
    (root / "train" / "DME" / "DME-1000100-9.jpeg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    shutil.copy(root / "train" / "CNV" / "CNV-1000000-1.jpeg", root / "train" / "CNV" / "CNV-1000001-7.jpeg")
    shutil.copy(root / "train" / "CNV" / "CNV-1000001-1.jpeg", root / "train" / "NORMAL" / "CNV-1000001-1.jpeg")
    (root / "train" / "NORMAL" / "notes.txt").write_text("x")
    out = tmp_path / "ds"
    assert main(["build", str(root), "--from", "kermany", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    for name, why in [("DME-1000100-9.jpeg", "truncated or corrupt"), ("CNV-1000001-7.jpeg", "duplicate"),
                      ("NORMAL/CNV-1000001-1.jpeg", "says class 'CNV'"), ("notes.txt", "not <CLASS>-<patient>-<n>")]:
        assert any(name in line and why in line for line in err.splitlines()), (name, err)
    assert not out.exists() and not (tmp_path / "ds.partial").exists()  # a rejected input is read afresh next time

    assert main(["build", str(root), "--from", "kermany", "--out", str(out), "--skip-invalid"]) == 0
    report = (tmp_path / "ds.skipped.csv").read_text()
    assert len(report.strip().splitlines()) == 1 + 4 and "CNV-1000001-7.jpeg" in report
    assert sum(len(d) for d in load_oct_dataset(out).values()) == 4 * 4 * 2
    assert not (tmp_path / "ds.partial").exists()


def test_class_folders_rgb_16bit_and_empty_class(tmp_path, capsys):
    root = tmp_path / "scans"
    for c, cls in enumerate(("healthy", "melanoma")):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            img = bscan(10 * c + i)
            if i == 1:
                Image.fromarray(np.stack([img] * 3, -1)).save(root / cls / f"{cls}{i}.png")  # RGB
            elif i == 2:
                Image.fromarray(img.astype(np.uint16) * 200).save(root / cls / f"{cls}{i}.tif")  # 16-bit
            else:
                Image.fromarray(img).save(root / cls / f"{cls}{i}.png")
    (root / "nevus").mkdir()
    out = tmp_path / "out"
    assert main(["build", str(root), "--from", "folders", "--out", str(out), "--classes", "healthy,nevus,melanoma"]) == 2
    assert "['nevus'] have no images" in capsys.readouterr().err
    (root / "nevus").rmdir()
    # Plain file names carry no patient id: refused, unless the split by image is asked for.
    args = ["build", str(root), "--from", "folders", "--out", str(out), "--classes", "melanoma,healthy",
            "--fractions", "0.5,0.25,0.25", "--size", "8x16"]
    assert main(args) == 2
    assert "8 of 8 image(s) have no patient id" in capsys.readouterr().err and not out.exists()
    with pytest.warns(UserWarning, match="no patient_id"):
        assert main([*args, "--split-by", "image"]) == 0
    ds = load_oct_dataset(out)
    assert ds["train"].features["label"].names == ["melanoma", "healthy"]
    images = [im for d in ds.values() for im in d["image"]]
    assert len(images) == 8 and {im.size for im in images} == {(16, 8)} and {im.mode for im in images} == {"L"}
    assert "each was split as its own patient" in (out / "README.md").read_text()


def test_manifest_with_configured_columns(tmp_path, capsys):
    (tmp_path / "img").mkdir()
    lines = []
    for i in range(12):
        name = f"scan_{i:02d}.png"
        Image.fromarray(bscan(i)).save(tmp_path / "img" / name)
        lines.append({"file name": name, "image_type": "OCT", "split": "train",
                      "Diagnosis": ["reference", "benign", "fluid"][i % 3],
                      "MRN": f"MRN{i // 2}", "visit": "1", "side": "R" if i % 2 else "left"})
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(lines[0]))
        writer.writeheader()
        writer.writerows(lines)
    args = ["build", str(manifest), "--from", "manifest", "--images-dir", str(tmp_path / "img"), "--out", str(tmp_path / "m"),
            "--file-column", "file name", "--label-column", "Diagnosis", "--patient-column", "MRN", "--exam-column", "visit",
            "--eye-column", "side", "--classes", "reference,benign,fluid"]
    assert main(args) == 0
    ds = load_dataset(str(tmp_path / "m"))
    rows = [r for d in ds.values() for r in d.select_columns(["patient_id", "eye", "exam_id"])]
    assert len(rows) == 12 and {r["eye"] for r in rows} == {"OD", "OS"}
    assert {r["patient_id"] for r in rows} == {pseudonym(f"MRN{i}") for i in range(6)}
    assert b"MRN" not in all_text(tmp_path / "m")

    with open(manifest, "a", newline="") as f:
        f.write("missing.png,OCT,train,benign,MRN9,1,OD\nscan_00.png,OCT,test,benign,MRN0,1,OD\nextra.png,OCT,test,benign,MRN7,1,up\n")
    Image.fromarray(bscan(77)).save(tmp_path / "img" / "extra.png")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "manifest.csv:14: file" in err and "missing.png does not exist" in err
    assert "manifest.csv:15: scan_00.png is already listed on line 2" in err
    assert "manifest.csv:16" in err and "'up'" in err


def test_vendor_zeiss_img_and_dicom_never_copy_identifiers(tmp_path):
    root = tmp_path / "exports"
    zeiss = np.stack([bscan(100 + i) for i in range(12)])
    write_zeiss_img(root / "healthy" / "P1234567_Macular Cube 512x128_7-25-2012_14-32-12_OD_sn12345_cube_z.img", zeiss)
    write_zeiss_img(root / "healthy" / "P7654321_Radial_8-1-2013_10-00-00_OS_sn1_cube_z.img", zeiss[:, ::-1, :] // 2)
    deep = (np.stack([bscan(200 + i) for i in range(12)]).astype(np.uint16) * 16 + 300)  # 12-bit in 16 bits
    write_oct_dicom(root / "melanoma" / "a.dcm", deep, patient_id="MRN-0042", patient_name="Doe^Jane")
    write_oct_dicom(root / "melanoma" / "b.dcm", deep[:, :, ::-1], patient_id="MRN-0043", patient_name="Roe^Richard",
                    laterality="R")
    out = tmp_path / "vendor"
    assert main(["build", str(root), "--from", "vendor", "--out", str(out), "--img-shape", f"{H}x{W}",
                 "--fractions", "0.5,0.5,0"]) == 0
    ds = load_oct_dataset(out)
    rows = [r for d in ds.values() for r in d]
    assert len(rows) == 48
    zeiss_rows = [r for r in rows if r["patient_id"] == pseudonym("P1234567")]
    assert [r["plane_deg"] for r in zeiss_rows] == [30.0 * i for i in range(12)] and {r["eye"] for r in zeiss_rows} == {"OD"}
    assert np.array_equal(np.asarray(zeiss_rows[5]["image"]), zeiss[5])  # exact pixels through oct-converter
    dicom_rows = [r for r in rows if r["patient_id"] == pseudonym("MRN-0042")]
    assert len(dicom_rows) == 12 and {r["eye"] for r in dicom_rows} == {"OS"}
    pix = np.asarray(dicom_rows[0]["image"])
    assert pix.min() == 0 and pix.max() == 255  # 16-bit rescaled over the volume, not clipped
    blob = all_text(out)
    for secret in (b"P1234567", b"MRN-0042", b"Doe", b"Jane", b"Richard", b"19700101", b"sn12345"):
        assert secret not in blob, secret

    (root / "melanoma" / "c.img").write_bytes(b"\1" * (H * W + 3))
    (root / "melanoma" / "d.dcm").write_bytes(b"not dicom")
    with pytest.raises(ValueError) as err:
        main_raise(["build", str(root), "--from", "vendor", "--out", str(out), "--img-shape", f"{H}x{W}"])
    assert "c.img" in str(err.value) and "--img-shape" in str(err.value) and "d.dcm" in str(err.value)


def main_raise(argv):
    """Run the CLI but let the error through (to read the whole message)."""
    from medicraft_hf.cli import build_parser

    args = build_parser().parse_args(argv)
    return args._run(args)


def test_folders_named_class_patient_n_are_split_by_patient(tmp_path, capsys):
    # The case: 20 patients, files `<class>-<patient>-<n>.png`. Each image used to be
    # its own patient (19 of 20 patients in several splits, with only a warning).
    root = class_folders(tmp_path / "scans", patients_per_class=10, images_per_patient=3)
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["build", str(root), "--from", "folders", "--out", str(out)]) == 0
    assert not [w for w in caught if "no patient_id" in str(w.message)]
    ds = load_oct_dataset(out)  # leakage-checked
    ids = [p for d in ds.values() for p in d["patient_id"]]
    assert Counter(ids) == {pseudonym(str(2000000 + 100 * c + p)): 3 for c in range(2) for p in range(10)}
    splits_of = {pid: {s for s, d in ds.items() if pid in set(d["patient_id"])} for pid in set(ids)}
    assert all(len(s) == 1 for s in splits_of.values())
    card = (out / "README.md").read_text()
    assert "**by patient**" in card and "by image" not in card and "without id" not in card
    assert b"2000000" not in all_text(out)  # hashed

    # A file named after another class than its folder is misfiled, as in the Kermany loader.
    Image.fromarray(bscan(1)).save(root / "healthy" / "melanoma-2000199-1.png")
    assert main(["build", str(root), "--from", "folders", "--out", str(tmp_path / "o2")]) == 2
    assert "says class 'melanoma' but it is in folder 'healthy'" in capsys.readouterr().err


def test_folders_without_patient_ids_refused_unless_pattern_or_split_by_image(tmp_path, capsys):
    root = class_folders(tmp_path / "scans", patients_per_class=3, images_per_patient=2, name="{cls}-P{patient}.{n}.png")
    out = tmp_path / "out"
    assert main(["build", str(root), "--from", "folders", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "12 of 12 image(s) have no patient id" in err
    assert str(root / "healthy" / "healthy-P2000000.1.png") in err  # names the files
    for how in ("<class>-<patient>-<n>", "--patient-pattern", "--from manifest", "--split-by image"):
        assert how in err, how
    assert not out.exists() and not (tmp_path / "out.partial").exists()

    # A pattern starting with "-", without the `=` form.
    assert main(["build", str(root), "--from", "folders", "--out", str(out), "--patient-pattern", r"-P(?P<patient>\d+)\."]) == 0
    ds = load_oct_dataset(out)
    assert {p for d in ds.values() for p in d["patient_id"]} == {
        pseudonym(str(2000000 + 100 * c + p)) for c in range(2) for p in range(3)
    }
    assert main(["build", str(root), "--from", "folders", "--out", str(out), "--patient-pattern=-P(?P<patient>\\d+)\\."]) == 0
    assert main(["build", str(root), "--from", "folders", "--out", str(out), "--patient-pattern", "-P(?P<id>\\d+)"]) == 2
    assert "--patient-pattern" in capsys.readouterr().err  # names the flag: the group must be `patient`

    # Asked for explicitly: split by image, and the card says so plainly.
    with pytest.warns(UserWarning, match="no patient_id"):
        assert main(["build", str(root), "--from", "folders", "--out", str(out), "--split-by", "image"]) == 0
    card = (out / "README.md").read_text()
    assert "**by image**, not by patient" in card and "may appear in several splits" in card
    assert "**by patient**" not in card and "exactly one split" not in card


def test_manifest_without_patient_ids_refused_unless_split_by_image(tmp_path, capsys):
    lines = []
    for i in range(6):
        Image.fromarray(bscan(300 + i)).save(tmp_path / f"scan_{i}.png")
        lines.append(f"scan_{i}.png,OCT,{['healthy', 'melanoma'][i % 2]},{'' if i == 3 else f'MRN{i // 2}'}")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("filename,image_type,diagnosis,patient_id\n" + "\n".join(lines) + "\n")
    out = tmp_path / "m"
    assert main(["build", str(manifest), "--from", "manifest", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "1 of 6 image(s) have no patient id" in err and "manifest.csv:5" in err  # line 5: the empty cell
    assert "--patient-column" in err and "--split-by image" in err

    manifest.write_text("filename,image_type,diagnosis\n" + "\n".join(ln.rsplit(",", 1)[0] for ln in lines) + "\n")
    assert main(["build", str(manifest), "--from", "manifest", "--out", str(out)]) == 2
    assert "6 of 6 image(s) have no patient id" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="no patient_id"):
        assert main(["build", str(manifest), "--from", "manifest", "--out", str(out), "--split-by", "image"]) == 0
    assert "**by image**" in (out / "README.md").read_text()


def test_build_and_anatomy_check_see_the_same_images_through_symlinks(tmp_path, capsys):
    real = class_folders(tmp_path / "real", patients_per_class=2, images_per_patient=2)
    extra = class_folders(tmp_path / "extra", classes=("melanoma",), patients_per_class=1, images_per_patient=2, seed=7000)
    root = tmp_path / "linked"
    (root / "melanoma").mkdir(parents=True)
    (root / "healthy").symlink_to(real / "healthy", target_is_directory=True)  # a symlinked class folder
    for f in (real / "melanoma").iterdir():
        (root / "melanoma" / f.name).symlink_to(f)  # symlinked files
    (root / "melanoma" / "batch2").symlink_to(extra / "melanoma", target_is_directory=True)  # a symlinked sub-folder
    (root / "melanoma" / "loop").symlink_to(root, target_is_directory=True)  # a cycle: listed once, not looped
    (root / "healthy" / ".cache").mkdir()
    Image.fromarray(bscan(9)).save(root / "healthy" / ".cache" / "thumb.png")  # hidden: ignored by both

    assert main(["anatomy-check", str(root), "--out", str(tmp_path / "anatomy")]) == 0
    assert capsys.readouterr().out.startswith("10 images:")
    summary = json.loads((tmp_path / "anatomy" / "anatomy_summary.json").read_text())
    # anatomy-check labels an image by its own folder's name, so the linked sub-folder is a label
    assert {label: s["n"] for label, s in summary["per_label"].items()} == {"healthy": 4, "melanoma": 4, "batch2": 2}

    out = tmp_path / "built"
    assert main(["build", str(root), "--from", "folders", "--out", str(out)]) == 0
    ds = load_oct_dataset(out)
    assert sum(len(d) for d in ds.values()) == 10
    assert Counter(label for d in ds.values() for label in d["label"]) == {0: 4, 1: 6}


def test_first_error_lists_every_problem_with_the_empty_class(tmp_path, capsys):
    root = class_folders(tmp_path / "scans", patients_per_class=3, images_per_patient=2)
    (root / "nevus").mkdir()  # an empty class folder
    (root / "healthy" / "healthy-2000000-9.png").write_bytes(b"not a png")
    Image.fromarray(bscan(4)).save(root / "stray.png")
    assert main(["build", str(root), "--from", "folders", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    for needle in ("['nevus'] have no images", "healthy-2000000-9.png: not a readable image",
                   "stray.png: file is not inside a class folder"):
        assert needle in err, (needle, err)
