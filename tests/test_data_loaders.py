"""Loaders end to end through `medicraft build`: Kermany tree, CSV manifest, Zeiss .img, OCT DICOM."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
from datasets import load_dataset
from PIL import Image

from medicraft_hf.cli import main
from medicraft_hf.data.load import load_oct_dataset
from medicraft_hf.deid import pseudonym
from tests.data_inputs import H, W, bscan, kermany_tree, write_oct_dicom, write_zeiss_img


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
    assert len(splits_of_first) == 1 and len(d_rows := [p for p in ds[splits_of_first[0]]["patient_id"] if p == first]) == 2
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
    with pytest.warns(UserWarning, match="no patient_id"):  # plain folders carry no patient ids
        assert main(["build", str(root), "--from", "folders", "--out", str(out), "--classes", "melanoma,healthy",
                     "--fractions", "0.5,0.25,0.25", "--size", "8x16"]) == 0
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
        lines.append({"file name": name, "image_type": "OCT", "split": "train", "Diagnosis": ["reference", "benign", "fluid"][i % 3],
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
    write_oct_dicom(root / "melanoma" / "b.dcm", deep[:, :, ::-1], patient_id="MRN-0043", patient_name="Roe^Richard", laterality="R")
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
