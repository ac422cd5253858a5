"""Hospital exports through `medicraft build`: every vendor format written here, read back, checked.

The files are laid out with the readers' own structure definitions (tests/vendor_files.py)
and carry planted identifiers; each test checks pixels (by the format's intensity mapping,
docs/building.md), the B-scan count (the last one kept), geometry, eye and that no planted
identifier reaches the dataset, its card or the log.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medicraft_hf.cli import main
from medicraft_hf.data.load import load_oct_dataset
from medicraft_hf.data.native_size import fit_bscan
from medicraft_hf.deid import pseudonym
from tests.vendor_files import (
    PLANTED,
    e2e_codes_for,
    e2e_display_lut,
    fda_decoded,
    known_bscans,
    write_bioptigen_oct,
    write_heidelberg_e2e,
    write_heidelberg_vol,
    write_optovue_oct,
    write_topcon_fda,
    write_topcon_fds,
)

H, W = 16, 24  # tiny B-scans (all formats store the size in their header)


def all_bytes(folder) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def rows_by_exam(out):
    ds = load_oct_dataset(out)  # schema- and leakage-checked
    rows = [r for d in ds.values() for r in d]
    exams = {}
    for r in rows:
        exams.setdefault(r["exam_id"], []).append(r)
    return ds, {k: sorted(v, key=lambda r: r["bscan_index"]) for k, v in exams.items()}


def pixels(exam_rows) -> np.ndarray:
    return np.stack([np.asarray(r["image"]) for r in exam_rows])


def test_every_vendor_format_round_trips_with_geometry_and_no_identifiers(tmp_path, capsys):
    root = tmp_path / "exports"
    vol_raster, vol_radial = known_bscans(5, H, W, 1), known_bscans(4, H, W, 2)
    write_heidelberg_vol(root / "healthy" / "Doe_Jane_1970-01-01.vol", vol_raster, eye="OD", distance=0.12)
    write_heidelberg_vol(root / "melanoma" / "radial.vol", vol_radial, pattern=5, eye="OS", angles_deg=[0, 45, 90, 135])
    e2e_star, e2e_cube = e2e_codes_for(known_bscans(6, H, W, 3)), e2e_codes_for(known_bscans(3, H, W, 4))
    write_heidelberg_e2e(root / "melanoma" / "Roe_Richard.e2e",
                         [dict(codes=e2e_star, eye="R", pattern="OCT Star Scan", scale_y=0.0039),
                          dict(codes=e2e_cube, eye="L", pattern="OCT ART Volume", scale_y=0.0039)])
    fds = known_bscans(4, H, W, 5)
    write_topcon_fds(root / "healthy" / "SN-884422.fds", fds.astype(np.uint16) * 100 + 7, eye=0, scan_mode=2,
                     x_mm=6.0, y_mm=6.0, z_um=2.6)
    fda = known_bscans(3, H, W, 6)
    write_topcon_fda(root / "melanoma" / "scan.fda", fda, eye=1, scan_mode=3)
    boct = known_bscans(3, H, W, 7)
    write_bioptigen_oct(root / "healthy" / "Doe_Jane_2012-07-25_OD.OCT", boct.astype(np.uint16) * 10 + 5, repeats=2,
                        scanlength=6.0, scandepth=1.6, elscanlength=4.0)
    optovue = known_bscans(4, H, W, 8)
    write_optovue_oct(root / "melanoma" / "Roe_2012-07-25_10.00.00.oct", optovue.astype(np.float32) * 0.5 + 3, eye="OS",
                      physical_width_mm=6.0, physical_height_mm=2.0)

    out = tmp_path / "built"
    assert main(["build", str(root), "--from", "vendor", "--out", str(out), "--fractions", "0.5,0.5,0"]) == 0
    log = capsys.readouterr()
    ds, exams = rows_by_exam(out)
    # 5 + 4 (VOL) + 6 + 3 (E2E) + 4 (FDS) + 3 (FDA) + 2 x 3 (Bioptigen repeats) + 4 (Optovue): every last B-scan kept
    assert sum(len(d) for d in ds.values()) == 35 and len(exams) == 9

    def exam(n, eye, first_pixels, tolerance=0):
        found = [e for e in exams.values() if len(e) == n and e[0]["eye"] == eye
                 and np.abs(np.asarray(e[0]["image"]).astype(int) - first_pixels).max() <= tolerance]
        assert len(found) == 1, (n, eye)
        return found[0]

    # Heidelberg VOL: float32 -> eyepy's from_vol_intensity (written with its inverse): within 1 grey level.
    r = exam(5, "OD", vol_raster[0], tolerance=1)
    assert np.abs(pixels(r).astype(int) - vol_raster).max() <= 1
    assert [round(x["position_mm"], 4) for x in r] == [0.0, 0.12, 0.24, 0.36, 0.48] and r[0]["plane_deg"] is None
    assert r[0]["depth_spacing_mm"] == pytest.approx(0.0039) and r[0]["lateral_spacing_mm"] == pytest.approx(0.0114)
    assert {x["patient_id"] for x in r} == {pseudonym("PLANTEDMRN-V")}
    r = exam(4, "OS", vol_radial[0], tolerance=1)
    assert [round(x["plane_deg"], 3) for x in r] == [0.0, 45.0, 90.0, 135.0] and r[0]["position_mm"] is None

    # Heidelberg E2E: two volumes of one file -> two exams of one patient; oct-converter's transform, x255.
    lut = e2e_display_lut()
    star, cube = exam(6, "OD", lut[e2e_star[0]]), exam(3, "OS", lut[e2e_cube[0]])
    assert np.array_equal(pixels(star), lut[e2e_star]) and np.array_equal(pixels(cube), lut[e2e_cube])
    assert [x["plane_deg"] for x in star] == [0.0, 30.0, 60.0, 90.0, 120.0, 150.0]
    assert cube[0]["plane_deg"] is None and cube[0]["position_mm"] is None  # E2E positions are in degrees, not mm
    assert star[0]["patient_id"] == cube[0]["patient_id"] == pseudonym("PLANTEDMRN-E")
    assert star[0]["depth_spacing_mm"] == pytest.approx(0.0039) and star[0]["lateral_spacing_mm"] is None

    # Topcon FDS: uint16 rescaled over the volume's range (the volume spans 0..255 after the rescale).
    r = exam(4, "OD", fds[0])
    assert np.array_equal(pixels(r), fds) and [x["position_mm"] for x in r] == [0.0, 1.5, 3.0, 4.5]
    assert r[0]["lateral_spacing_mm"] == pytest.approx(6.0 / W) and r[0]["depth_spacing_mm"] == pytest.approx(0.0026)
    assert r[0]["patient_id"] == pseudonym("PLANTEDMRN-T")
    # Topcon FDA: the JPEG slices as decoded; radial scan mode -> even angles over 180 degrees.
    decoded = fda_decoded(fda)
    r = exam(3, "OS", decoded[0])
    assert np.array_equal(pixels(r), decoded) and [x["plane_deg"] for x in r] == [0.0, 60.0, 120.0]

    # Bioptigen: A-scan-major frames turned depth-down; two repeats -> two exams; eye from the file name.
    first, second = exam(3, "OD", boct[0]), exam(3, "OD", np.roll(boct[0], 1, axis=-1))
    assert np.array_equal(pixels(first), boct) and np.array_equal(pixels(second), np.roll(boct, 1, axis=-1))
    assert [x["position_mm"] for x in first] == [0.0, 2.0, 4.0]
    assert first[0]["depth_spacing_mm"] == pytest.approx(1.6 / H) and first[0]["lateral_spacing_mm"] == pytest.approx(6.0 / W)
    assert first[0]["patient_id"] == second[0]["patient_id"]  # one file, one patient (the header has no id)
    # Optovue: float32 rescaled over the volume's range; no pattern in the filespec -> --planes (radial default).
    r = exam(4, "OS", optovue[0])
    assert np.array_equal(pixels(r), optovue) and [x["plane_deg"] for x in r] == [0.0, 90.0, 180.0, 270.0]
    assert r[0]["lateral_spacing_mm"] == pytest.approx(6.0 / W) and r[0]["depth_spacing_mm"] == pytest.approx(2.0 / H)

    # Nothing planted in a header or a file name reaches the dataset, its card or the log.
    blob = all_bytes(out) + (log.out + log.err).encode()
    for secret in (*PLANTED, "PLANTEDMRN", "Doe_Jane"):
        assert secret.encode() not in blob, secret
    assert "oct-converter and eyepy" in (out / "README.md").read_text()


def test_damaged_volume_of_a_multi_volume_file_keeps_the_others(tmp_path, capsys):
    root = tmp_path / "exports"
    good, cut = e2e_codes_for(known_bscans(4, H, W, 11)), e2e_codes_for(known_bscans(5, H, W, 12))
    path = write_heidelberg_e2e(root / "melanoma" / "two.e2e",
                                [dict(codes=good, eye="R", pattern="OCT ART Volume", scale_y=0.0039),
                                 dict(codes=cut, eye="L", pattern="OCT ART Volume", scale_y=0.0039)],
                                truncate_last_at=20 + 50)  # 25 of the last B-scan's pixels left
    write_heidelberg_vol(root / "healthy" / "a.vol", known_bscans(3, H, W, 13), patient_id="PLANTEDMRN-V2")
    out = tmp_path / "built"
    assert main(["build", str(root), "--from", "vendor", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: volume 2 of 2: a B-scan's image data is cut short" in err and "--skip-invalid" in err
    assert not out.exists()

    assert main(["build", str(root), "--from", "vendor", "--out", str(out), "--skip-invalid", "--fractions", "0.5,0.5,0"]) == 0
    report = (tmp_path / "built.skipped.csv").read_text()
    assert "volume 2 of 2" in report and len(report.strip().splitlines()) == 2
    _, exams = rows_by_exam(out)
    lut = e2e_display_lut()
    kept = [e for e in exams.values() if e[0]["eye"] == "OD" and len(e) == 4]
    assert len(kept) == 1 and np.array_equal(pixels(kept[0]), lut[good])  # volume 1, whole, last B-scan included


def test_bad_vendor_files_are_each_named_then_skipped_with_report(tmp_path, capsys):
    root = tmp_path / "exports"
    write_heidelberg_vol(root / "healthy" / "good.vol", known_bscans(3, H, W, 21))
    (root / "healthy" / "foreign.vol").write_bytes(b"PK\x03\x04 a zip file, not a VOL" * 40)
    write_topcon_fds(root / "healthy" / "cut.fds", known_bscans(3, H, W, 22).astype(np.uint16), truncate=400)
    b = write_bioptigen_oct(tmp_path / "whole.oct", known_bscans(3, H, W, 23).astype(np.uint16))
    (root / "healthy" / "cut.oct").write_bytes(b.read_bytes()[:-300])
    (root / "melanoma").mkdir(parents=True)
    (root / "melanoma" / "lonely.oct").write_bytes(b"\0" * 4096)  # no Bioptigen header, no Optovue .txt
    write_optovue_oct(root / "melanoma" / "two_scans.oct", known_bscans(3, H, W, 24).astype(np.float32), volumes=2)
    sizes = [known_bscans(1, H, W, 25)[0], known_bscans(1, H, W + 8, 26)[0]]
    write_heidelberg_e2e(root / "melanoma" / "sizes.e2e",
                         [dict(codes=[e2e_codes_for(s) for s in sizes], eye="L", pattern="OCT ART Volume", scale_y=0.0039)])
    write_heidelberg_vol(root / "melanoma" / "good.vol", known_bscans(3, H, W, 27), patient_id="PLANTEDMRN-V2")
    write_heidelberg_e2e(root / "melanoma" / "mixed.e2e",
                         [dict(codes=e2e_codes_for(known_bscans(2, H, W, 28)), eye="L", pattern="OCT ART Volume",
                               scale_y=0.0039, patient_db=p) for p in (1, 2)])
    out = tmp_path / "built"
    assert main(["build", str(root), "--from", "vendor", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    expected = {"foreign.vol": "not a Heidelberg VOL file", "cut.fds": "not a readable Topcon .fds file",
                "cut.oct": "truncated Bioptigen file", "lonely.oct": "neither a Bioptigen .oct",
                "two_scans.oct": "unsupported Optovue variant: 2 scans", "sizes.e2e": "its B-scans differ in size",
                "mixed.e2e": "volumes of several patients in one file"}
    for name, why in expected.items():
        lines = [line for line in err.splitlines() if name in line]
        assert len(lines) == 1 and why in lines[0] and "->" in lines[0], (name, err)
    assert "two_scans.txt: not an image" not in err  # the filespec is part of its .oct, no stray file

    assert main(["build", str(root), "--from", "vendor", "--out", str(out), "--skip-invalid", "--fractions", "0.5,0.5,0"]) == 0
    report = (tmp_path / "built.skipped.csv").read_text()
    assert all(name in report for name in expected) and len(report.strip().splitlines()) == 1 + len(expected)
    assert sum(len(d) for d in load_oct_dataset(out).values()) == 6


@pytest.mark.parametrize("native", [(496, 512), (496, 768), (496, 1024), (1024, 512)])
def test_native_size_policies(native):
    h, w = native
    image = Image.fromarray(np.tile(np.linspace(10, 255, w).astype(np.uint8), (h, 1)))  # no black column
    spacing = (0.0039, 6.0 / w)  # Spectralis-like: 3.9 um deep, a 6 mm line
    out, sp = fit_bscan(image, (256, 512), "resize", spacing)
    assert out.size == (512, 256) and sp == pytest.approx((0.0039 * h / 256, 6.0 / 512))
    out, sp = fit_bscan(image, (256, 512), "crop", spacing)
    assert out.size == (512, 256) and sp == spacing
    arr = np.asarray(out)
    if w >= 512:  # the centre columns, unscaled
        assert np.array_equal(arr[0], np.asarray(image)[0, (w - 512) // 2:(w - 512) // 2 + 512])
    out, sp = fit_bscan(image, (256, 512), "pad", spacing)
    factor = min(256 / h, 512 / w)
    assert out.size == (512, 256) and sp[0] / sp[1] == pytest.approx(spacing[0] / spacing[1], rel=0.02)
    filled = np.asarray(out).any(axis=0).sum(), np.asarray(out).any(axis=1).sum()
    assert abs(filled[0] - round(w * factor)) <= 1
    out, sp = fit_bscan(image, (256, 512), "physical", spacing)
    assert out.size == (512, 256) and sp[0] == pytest.approx(sp[1], rel=0.01)  # square pixels in mm (to rounding)
    # The physical extent kept: a 6 mm line over ~1.9 mm of depth stays ~3.1 times wider than deep.
    rows = np.flatnonzero(np.asarray(out).max(axis=1) > 0)
    cols = np.flatnonzero(np.asarray(out).max(axis=0) > 0)
    assert (np.ptp(cols) + 1) * sp[1] == pytest.approx(6.0, rel=0.02)
    assert (np.ptp(rows) + 1) * sp[0] == pytest.approx(h * 0.0039, rel=0.02)
    with pytest.raises(ValueError, match="no pixel spacing"):
        fit_bscan(image, (256, 512), "physical", (None, None))


def test_fit_policy_recorded_in_card_and_rows_without_spacing_named(tmp_path, capsys):
    root = tmp_path / "exports"
    write_heidelberg_vol(root / "healthy" / "a.vol", known_bscans(3, 24, 40, 31), scale_y=0.004, scale_x=0.012)
    write_heidelberg_vol(root / "melanoma" / "b.vol", known_bscans(3, 24, 40, 32), scale_y=0.004, scale_x=0.012,
                         patient_id="PLANTEDMRN-V2")
    out = tmp_path / "built"
    args = ["build", str(root), "--from", "vendor", "--out", str(out), "--size", "12x60", "--fit", "physical",
            "--fractions", "0.5,0.5,0"]
    assert main(args) == 0
    card = (out / "README.md").read_text()
    assert "resampled to square pixels in millimetres" in card and "`--fit physical`" in card
    rows = [r for d in load_oct_dataset(out).values() for r in d]
    assert {r["image"].size for r in rows} == {(60, 12)}  # 24x40 at 4 x 12 um -> 24x120 square pixels -> x0.5
    assert {(round(r["depth_spacing_mm"], 6), round(r["lateral_spacing_mm"], 6)) for r in rows} == {(0.008, 0.008)}
    # A source without pixel spacing (Optovue filespec without it) cannot be fitted physically: named, not dropped.
    write_optovue_oct(root / "melanoma" / "nospacing.oct", known_bscans(2, 24, 40, 33).astype(np.float32),
                      physical_width_mm=None, physical_height_mm=None)
    assert main([*args, "--out", str(tmp_path / "b2")]) == 2
    err = capsys.readouterr().err
    assert "nospacing.oct[0]: no pixel spacing" in err and "--fit pad" in err
    assert main(["build", str(root), "--from", "vendor", "--out", str(tmp_path / "b3"), "--fit", "crop"]) == 2
    assert "--fit crop needs --size HxW" in capsys.readouterr().err


def test_kermany_manifest_and_vendor_files_end_in_one_schema_split_by_patient(tmp_path):
    from medicraft_hf.data.split import check_no_patient_leakage
    from medicraft_hf.schema import oct_features
    from tests.data_inputs import kermany_tree

    kermany = kermany_tree(tmp_path / "OCT2017", patients_per_class=3)
    vendor = tmp_path / "exports"
    for c, cls in enumerate(("healthy", "melanoma")):
        for p in range(2):
            write_heidelberg_vol(vendor / cls / f"{p}.vol", known_bscans(3, H, W, 40 + 2 * c + p),
                                 patient_id=f"PLANTEDMRN-{c}{p}")
    # A manifest may list vendor files beside image files; vendor files bring their own patient.
    (tmp_path / "img").mkdir()
    lines = ["filename,diagnosis,patient_id"]
    for i in range(4):
        Image.fromarray(known_bscans(1, H, W, 60 + i)[0]).save(tmp_path / "img" / f"s{i}.png")
        lines.append(f"img/s{i}.png,{('healthy', 'melanoma')[i % 2]},MRN{i}")
    lines += ["exports/healthy/0.vol,healthy,", "exports/melanoma/0.vol,melanoma,"]
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    builds = {"kermany": [str(kermany), "--from", "kermany"], "vendor": [str(vendor), "--from", "vendor"],
              "manifest": [str(tmp_path / "manifest.csv"), "--from", "manifest"]}
    for name, args in builds.items():
        assert main(["build", *args, "--out", str(tmp_path / name), "--fractions", "0.5,0.5,0"]) == 0, name
        ds = load_oct_dataset(tmp_path / name)
        names = ds["train"].features["label"].names
        assert all(d.features == oct_features(names) for d in ds.values()), name
        check_no_patient_leakage(ds)
        patients = [set(d["patient_id"]) for d in ds.values()]
        assert all(p for p in patients) and not set.intersection(*patients), name
    rows = [r for d in load_oct_dataset(tmp_path / "manifest").values() for r in d]
    assert len(rows) == 4 + 2 * 3 and {r["patient_id"] for r in rows if r["bscan_index"] is not None} == {
        pseudonym("PLANTEDMRN-00"), pseudonym("PLANTEDMRN-10")}
