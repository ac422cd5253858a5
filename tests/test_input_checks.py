"""Hostile inputs through the one checked reader: every file ends as a row or a named problem
(builders, anatomy-check, evaluation inputs), before anything large is decoded."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from medicraft_hf.cli import main
from medicraft_hf.data.images import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    InvalidImageError,
    check_plausible,
    max_pixels_budget,
    read_image,
    read_image_size,
)
from tests.data_inputs import bscan, class_folders
from tests.hostile_files import multi_frame_tiff, png_declaring, tiny_dicom


def reason(path, **kwargs) -> str:
    with pytest.raises(InvalidImageError) as raised:
        read_image(path, **kwargs)
    assert raised.value.file == str(path) and raised.value.fix
    return raised.value.reason


def test_every_kind_of_bad_file_is_named_before_decoding(tmp_path):
    assert DEFAULT_MAX_PIXELS < Image.MAX_IMAGE_PIXELS / 4
    # Headers declaring huge images: refused from the header (a 74-byte file, nothing allocated).
    assert "decompression bomb" in reason(png_declaring(tmp_path / "bomb.png", 100_000, 100_000))
    assert "more than the budget" in reason(png_declaring(tmp_path / "big.png", 6000, 6000))
    assert "more than the budget of 1,000" in reason(png_declaring(tmp_path / "b.png", 100, 100), max_pixels=1000)
    tiff = tmp_path / "big.tif"
    Image.new("I;16", (5000, 4000)).save(tiff)
    with pytest.raises(InvalidImageError, match="20,000,000 pixels"):
        read_image_size(tiff)
    # Not files.
    (tmp_path / "folder.png").mkdir()
    assert "is a folder" in reason(tmp_path / "folder.png")
    os.symlink(tmp_path / "nowhere.png", tmp_path / "dangling.png")
    assert "broken link" in reason(tmp_path / "dangling.png")
    os.symlink(tmp_path / "loop.png", tmp_path / "loop.png")
    assert "link loop" in reason(tmp_path / "loop.png")
    os.mkfifo(tmp_path / "pipe.png")  # a reader would block on it
    assert "not a regular file" in reason(tmp_path / "pipe.png")
    assert "file not found" in reason(tmp_path / "missing.png")
    # Damaged or unusual content.
    assert "3 frames" in reason(multi_frame_tiff(tmp_path / "volume.tif"))
    (tmp_path / "empty.png").write_bytes(b"")
    assert "not a readable image" in reason(tmp_path / "empty.png")
    good = io.BytesIO()
    Image.fromarray(bscan(1)).save(good, format="PNG")
    (tmp_path / "cut.png").write_bytes(good.getvalue()[:-30])
    assert "truncated or corrupt" in reason(tmp_path / "cut.png")
    nan = np.full((16, 32), np.nan, np.float32)
    Image.fromarray(nan, mode="F").save(tmp_path / "nan.tif")
    assert "NaN" in reason(tmp_path / "nan.tif")
    # File objects are named by the caller.
    with pytest.raises(InvalidImageError, match=r"^row 3: not a readable image"):
        read_image(io.BytesIO(b"junk"), name="row 3")


def test_pixel_budget_from_the_environment(monkeypatch):
    monkeypatch.setenv(MAX_PIXELS_ENV, "1_000_000")
    assert max_pixels_budget() == 1_000_000 and max_pixels_budget(5) == 5
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match=f"{MAX_PIXELS_ENV}='lots' is not a whole number"):
        max_pixels_budget()
    monkeypatch.delenv(MAX_PIXELS_ENV)
    assert max_pixels_budget() == DEFAULT_MAX_PIXELS
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        max_pixels_budget(0)


def test_plausibility_screen():
    check_plausible(Image.fromarray(bscan(3)), "ok.png")
    noisy_blank = np.full((64, 128), 40, np.uint8)
    noisy_blank[::7, ::5] += 3  # sensor noise on a blank frame
    with pytest.raises(InvalidImageError, match="blank or near-constant"):
        check_plausible(Image.fromarray(noisy_blank), "blank.png")
    white = bscan(4).copy()
    white[:, : white.shape[1] * 2 // 3] = 255
    with pytest.raises(InvalidImageError, match=r"mostly saturated image \(\d+% of the pixels"):
        check_plausible(Image.fromarray(white), "white.png")


def hostile_folder(root):
    """Two good classes, plus one of each bad file in the first class folder."""
    class_folders(root, patients_per_class=3, images_per_patient=1)
    bad = root / "healthy"
    png_declaring(bad / "healthy-9000001-1.png", 100_000, 100_000)  # a bomb
    png_declaring(bad / "healthy-9000002-1.png", 12_000, 12_000)  # over the budget
    os.symlink(root / "nowhere.png", bad / "healthy-9000003-1.png")
    os.symlink(bad / "healthy-9000004-1.png", bad / "healthy-9000004-1.png")  # a loop
    (bad / "healthy-9000005-1.png").mkdir()
    multi_frame_tiff(bad / "healthy-9000006-1.tif", seed=77)
    Image.fromarray(np.zeros((16, 32), np.uint8)).save(bad / "healthy-9000007-1.png")  # blank
    return {"9000001": "decompression bomb", "9000002": "more than the budget", "9000003": "broken link",
            "9000004": "link loop", "9000005": "is a folder", "9000006": "3 frames", "9000007": "blank"}


def test_build_names_every_hostile_file_then_skips_them_and_leaves_no_partial(tmp_path, capsys):
    expected = hostile_folder(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["build", str(tmp_path / "in"), "--from", "folders", "--out", str(out), "--fractions", "0.5,0,0.5"]) == 2
    message = capsys.readouterr().err
    assert "Traceback" not in message
    for patient, why in expected.items():
        line = next(ln for ln in message.splitlines() if patient in ln)
        assert why in line, line
    assert not out.exists() and not (tmp_path / "out.partial").exists()

    assert main(["build", str(tmp_path / "in"), "--from", "folders", "--out", str(out), "--fractions", "0.5,0,0.5",
                 "--skip-invalid"]) == 0
    report = (tmp_path / "out.skipped.csv").read_text()
    assert all(patient in report for patient in expected) and len(report.splitlines()) == 1 + len(expected)
    assert not (tmp_path / "out.partial").exists()


def test_build_pixel_budget_flag(tmp_path, capsys):
    class_folders(tmp_path / "in", patients_per_class=2, images_per_patient=1)  # 16x32 images: 512 pixels
    args = ["build", str(tmp_path / "in"), "--from", "folders", "--out", str(tmp_path / "out")]
    assert main([*args, "--max-pixels", "500"]) == 2
    err = capsys.readouterr().err
    assert "declares 32x16 = 512 pixels, more than the budget of 500" in err and "--max-pixels" in err
    assert main([*args, "--max-pixels", "0"]) == 2
    assert "--max-pixels must be a positive integer" in capsys.readouterr().err


def test_patient_pattern_matching_only_the_extension_is_a_problem(tmp_path, capsys):
    class_folders(tmp_path / "in", patients_per_class=2, images_per_patient=1, name="{patient}_{n}.png")
    (tmp_path / "in" / "healthy" / "A_B.png").write_bytes((tmp_path / "in" / "healthy" / "2000000_1.png").read_bytes())
    assert main(["build", str(tmp_path / "in"), "--from", "folders", "--out", str(tmp_path / "out"),
                 "--patient-pattern", "(?P<patient>[a-z0-9]+)"]) == 2
    err = capsys.readouterr().err
    assert "A_B.png: the patient pattern '(?P<patient>[a-z0-9]+)' matches only the extension ('png')" in err


def test_dicom_errors_name_the_reader(tmp_path):
    from medicraft_hf.data.vendor import vendor_rows

    path = tiny_dicom(tmp_path / "scan.dcm", np.stack([bscan(1), bscan(2)]).astype(np.uint16) * 200)
    assert len(list(vendor_rows(path, "healthy"))) == 2
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(path.read_bytes()[:-500])  # pixel data cut short
    with pytest.raises(InvalidImageError) as raised:
        list(vendor_rows(broken, "healthy"))
    assert "pydicom" in raised.value.reason and "oct-converter" not in raised.value.reason
    with pytest.raises(InvalidImageError, match="more than the budget of 100"):
        list(vendor_rows(path, "healthy", max_pixels=100))
    (tmp_path / "dir.dcm").mkdir()
    with pytest.raises(InvalidImageError, match="is a folder"):
        list(vendor_rows(tmp_path / "dir.dcm", "healthy"))


def test_anatomy_check_reads_through_the_checked_reader(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(bscan(1, 64, 128)).save(folder / "ok.png")
    png_declaring(folder / "bomb.png", 100_000, 100_000)
    (folder / "cut.png").write_bytes((folder / "ok.png").read_bytes()[:100])
    (folder / "dir.png").mkdir()
    os.symlink(folder / "nowhere.png", folder / "dangling.png")
    multi_frame_tiff(folder / "volume.tif")
    assert main(["anatomy-check", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "5 problem(s) in the images" in err
    for name in ("bomb.png", "cut.png", "dir.png", "dangling.png", "volume.tif"):
        assert name in err

    out = tmp_path / "report"
    assert main(["anatomy-check", str(folder), "--out", str(out), "--skip-invalid"]) == 0
    assert "1 images:" in capsys.readouterr().out
    assert len((out / "anatomy_skipped.csv").read_text().splitlines()) == 6
    assert main(["anatomy-check", str(folder / "bomb.png")]) == 2
    assert "bomb.png: decompression bomb" in capsys.readouterr().err


def test_evaluation_inputs_read_stored_images_through_the_checked_reader(tmp_path):
    from datasets import Dataset, Features, Value
    from datasets import Image as DatasetImage

    from medicraft_hf.evaluation.inputs import image_size_of, to_image_set

    good = io.BytesIO()
    Image.fromarray(bscan(1)).save(good, format="PNG")
    bomb = png_declaring(tmp_path / "bomb.png", 100_000, 100_000).read_bytes()
    features = Features({"image": DatasetImage(), "label": Value("int64"), "image_id": Value("string")})
    ok = Dataset.from_dict({"image": [{"bytes": good.getvalue(), "path": None}], "label": [0], "image_id": ["a"]},
                           features=features)
    assert image_size_of(ok, "real['train']") == (16, 32)
    assert to_image_set(ok, (16, 32), "real/train").images.shape == (1, 16, 32)
    hostile = Dataset.from_dict({"image": [{"bytes": bomb, "path": None}], "label": [0], "image_id": ["b"]},
                                features=features)
    with pytest.raises(InvalidImageError, match=r"real\['train'\]: image 'b': decompression bomb"):
        image_size_of(hostile, "real['train']")
    with pytest.raises(InvalidImageError, match="real/train: image 'b': decompression bomb"):
        to_image_set(hostile, (16, 32), "real/train")
