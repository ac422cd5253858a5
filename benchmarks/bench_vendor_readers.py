"""oct-converter vs eyepy on the Heidelberg formats both claim: what each returns, side by side.

    OMP_NUM_THREADS=1 python benchmarks/bench_vendor_readers.py

Writes E2E files with tests/vendor_files.py (a raster and a radial volume in one file, with
known pixels, eyes and B-scan positions) and a VOL file, reads each with both libraries
and prints, per reader: volumes found, B-scans per volume (the last one kept?), pixels equal
to what was written (after the reader's own intensity transform, x255), eye, per-B-scan
positions, and seconds. This is the measurement behind the reader picked per format in
docs/building.md. The files are synthetic (no real export is available here): they show
how the readers treat the layout both of them document, not how they treat every
device's quirks.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.vendor_files writes the files


def _oct_converter_e2e(path):
    from oct_converter.readers import E2E

    volumes = E2E(path).read_oct_volume()
    return [dict(n=len(v.volume), pixels=np.round(255 * np.stack(v.volume)).astype(np.uint8),
                 eye={"R": "OD", "L": "OS"}.get(v.laterality), positions=None) for v in volumes]


def _eyepy_e2e(path):
    from eyepy.core.utils import from_e2e_intensity
    from eyepy.io.he.e2e_reader import HeE2eReader

    out = []
    with HeE2eReader(path) as reader:
        for series in reader.series:
            data = series.get_bscans()
            meta = series.get_bscan_meta()
            out.append(dict(n=len(data), pixels=np.stack([from_e2e_intensity(np.array(b)) for b in data]),
                            eye=str(series.laterality()), positions=[(m["start_pos"], m["end_pos"]) for m in meta]))
    return out


def main() -> None:
    from tests.vendor_files import e2e_codes_for, e2e_display_lut, known_bscans, write_heidelberg_e2e

    lut = e2e_display_lut()
    h, w = 64, 96
    cube, star = known_bscans(7, h, w, 1), known_bscans(6, h, w, 2)
    angles = np.radians([180.0 * i / 6 for i in range(6)])
    star_positions = [((10 - 10 * np.cos(a), 10 - 10 * np.sin(a)), (10 + 10 * np.cos(a), 10 + 10 * np.sin(a)))
                      for a in angles]
    volumes = [dict(codes=e2e_codes_for(cube), eye="R", pattern="OCT ART Volume", scale_y=0.0039),
               dict(codes=e2e_codes_for(star), eye="L", pattern="OCT Star Scan", scale_y=0.0039,
                    positions=star_positions)]
    expected = [dict(n=7, pixels=lut[volumes[0]["codes"]], eye="OD"), dict(n=6, pixels=lut[volumes[1]["codes"]], eye="OS")]
    with tempfile.TemporaryDirectory() as tmp:
        _compare(write_heidelberg_e2e(Path(tmp) / "two.e2e", volumes), expected,
                 f"E2E, 2 volumes (raster 7 B-scans OD, radial 6 B-scans OS), {h}x{w}:")
        # The same file cut 100 bytes into the last B-scan's pixels: is volume 1 still read?
        cut = write_heidelberg_e2e(Path(tmp) / "cut.e2e", volumes, truncate_last_at=20 + 100)
        _compare(cut, [expected[0], dict(n=6, pixels=expected[1]["pixels"], eye="OS")],
                 "The same file cut short inside the last B-scan (volume 2 damaged, volume 1 whole):")


def _compare(path, expected, title) -> None:
    print(title)
    print(f"{'reader':<14} {'volumes':>7} {'B-scans':>9} {'pixels equal':>13} {'max diff':>8} {'eye':>7} "
          f"{'positions':>9} {'seconds':>7}")
    for name, read in (("oct-converter", _oct_converter_e2e), ("eyepy", _eyepy_e2e)):
        start = time.perf_counter()
        try:
            got = read(path)
        except Exception as err:  # a reader that fails on the file is a result too
            print(f"{name:<14} fails: {type(err).__name__}: {str(err).splitlines()[0][:80]}")
            continue
        seconds = time.perf_counter() - start
        counts = "/".join(str(v["n"]) for v in got)
        same = [v["n"] == e["n"] and np.array_equal(v["pixels"], e["pixels"]) for v, e in zip(got, expected)]
        diff = max([int(np.abs(v["pixels"].astype(int) - e["pixels"]).max()) for v, e in zip(got, expected)
                    if v["n"] == e["n"]] or [-1])
        eyes = "/".join(str(v["eye"]) for v in got)
        positions = "yes" if all(v["positions"] for v in got) else "no"
        print(f"{name:<14} {len(got):>7} {counts:>9} {sum(same):>6} of {len(expected)} {diff:>8} {eyes:>7} "
              f"{positions:>9} {seconds:>7.2f}")
    print("written:       2       7/6          -        -   OD/OS       yes\n")


if __name__ == "__main__":
    main()
