"""Fuzz the input readers: seeded byte mutations of PNG, JPEG, TIFF 8/16-bit and DICOM files.

Every mutated file must end as a row or as a named problem (`InvalidImageError`, naming the
file and what to do); any other exception is a crash and is counted (the run exits 1).
Each file is judged the way `medicraft build` judges it (`read_image` + the plausibility
screen for images, `vendor_rows` for DICOM), then a sample goes through the builder end to
end (`folder_rows` -> `rows_to_dataset(skip_invalid=True)`) to check that no file is dropped
silently. Reports counts per format and outcome, the problems by reason, seconds and peak
memory (the process's peak RSS, and the largest growth while judging one file).

    .venv/bin/python benchmarks/bench_fuzz_inputs.py --count 3000 [--seed 0] [--out fuzz.json]

`tests/test_fuzz_inputs.py` runs the same machinery on a few hundred files.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import resource
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.hostile_files / tests.data_inputs write the seed files

FORMATS = ("png", "jpeg", "tiff8", "tiff16", "dicom")
SUFFIX = {"png": ".png", "jpeg": ".jpeg", "tiff8": ".tif", "tiff16": ".tif", "dicom": ".dcm"}
SIZE = (64, 128)  # (H, W) of the seed B-scans


def seed_bytes(fmt: str, seed: int = 0) -> bytes:
    """One valid file of `fmt` holding a plausible B-scan."""
    from tests.data_inputs import bscan
    from tests.hostile_files import tiny_dicom

    scan = bscan(seed, *SIZE)
    buf = io.BytesIO()
    if fmt == "png":
        Image.fromarray(scan).save(buf, format="PNG")
    elif fmt == "jpeg":
        Image.fromarray(scan).save(buf, format="JPEG", quality=90)
    elif fmt == "tiff8":
        Image.fromarray(scan).save(buf, format="TIFF")
    elif fmt == "tiff16":
        Image.fromarray(scan.astype(np.uint16) * 257).save(buf, format="TIFF")
    elif fmt == "dicom":
        with tempfile.TemporaryDirectory() as tmp:
            path = tiny_dicom(Path(tmp) / "seed.dcm", np.stack([scan, bscan(seed + 1, *SIZE)]).astype(np.uint16) * 200)
            return path.read_bytes()
    else:
        raise ValueError(f"unknown format {fmt!r}; one of {FORMATS}")
    return buf.getvalue()


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One seeded mutation of `data` (header-biased: headers are where readers trust sizes)."""
    data = bytearray(data)
    n = len(data)
    kind = rng.choice(["flip", "flip_header", "truncate", "insert", "field", "zero_run", "duplicate"])
    if kind in ("flip", "flip_header"):
        span = min(n, 300) if kind == "flip_header" else n
        for _ in range(int(rng.integers(1, 9))):
            data[int(rng.integers(0, span))] = int(rng.integers(0, 256))
    elif kind == "truncate":
        data = data[: int(rng.integers(0, n))]
    elif kind == "insert":
        at = int(rng.integers(0, n))
        data[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif kind == "field":  # a 2- or 4-byte size/offset field set to an extreme
        width = int(rng.choice([2, 4]))
        at = int(rng.integers(0, max(1, min(n, 400) - width)))
        value = int(rng.choice([0, 1, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF])) & ((1 << (8 * width)) - 1)
        data[at : at + width] = value.to_bytes(width, str(rng.choice(["big", "little"])))
    elif kind == "zero_run":
        at = int(rng.integers(0, n))
        data[at : at + int(rng.integers(1, 200))] = bytes(min(n - at, 200))[: len(data[at : at + 200])]
    else:  # duplicate a slice in place (repeated chunks, markers, tags)
        at, length = int(rng.integers(0, n)), int(rng.integers(1, 128))
        data[at:at] = data[at : at + length]
    return bytes(data), str(kind)


def write_corpus(folder: Path, count: int, seed: int = 0) -> list[tuple[Path, str, str]]:
    """`count` mutated files (formats in turn) under `folder/healthy/`, named `healthy-<n>-1.<ext>`
    so the builder gives each a patient; (path, format, mutation) of each."""
    rng = np.random.default_rng(seed)
    seeds = {fmt: seed_bytes(fmt, seed) for fmt in FORMATS}
    (folder / "healthy").mkdir(parents=True, exist_ok=True)
    corpus = []
    for i in range(count):
        fmt = FORMATS[i % len(FORMATS)]
        data, kind = mutate(seeds[fmt], rng)
        path = folder / "healthy" / f"healthy-f{i:06d}-1{SUFFIX[fmt]}"
        path.write_bytes(data)
        corpus.append((path, fmt, kind))
    return corpus


def judge(path: Path, max_pixels: int | None = None) -> tuple[str, str]:
    """("row", "N") when the file gives N rows, ("problem", reason) for a named problem;
    anything else raised is a crash and propagates."""
    from medicraft_hf.data.images import InvalidImageError, check_plausible, read_image
    from medicraft_hf.data.vendor import VENDOR_EXTENSIONS, vendor_rows

    try:
        if path.suffix.lower() in VENDOR_EXTENSIONS:
            rows = list(vendor_rows(path, "healthy", max_pixels=max_pixels))
            if not rows:
                raise AssertionError(f"{path}: a vendor file gave neither rows nor a problem")
            for row in rows:  # what the builder does with each B-scan
                from medicraft_hf.data.images import load_image

                check_plausible(load_image(row["image"], row["origin"]), row["origin"])
            return "row", str(len(rows))
        check_plausible(read_image(path, max_pixels=max_pixels), str(path))
        return "row", "1"
    except InvalidImageError as err:
        if not err.reason or not err.fix or err.file not in (str(path),) and not err.file.startswith(f"{path}["):
            raise AssertionError(f"{path}: a problem that does not name the file: {err!r}") from None
        return "problem", err.reason


def reason_kind(reason: str) -> str:
    """A problem's reason without its details ("truncated or corrupt image (...)" -> "truncated or corrupt image")."""
    return re.split(r" \(|: |, ", reason, maxsplit=1)[0]


def build_accounts(folder: Path, files: list[Path]) -> dict:
    """Build the folder end to end (skip-invalid); every file must give a row or a problem."""
    from medicraft_hf.data.build import rows_to_dataset
    from medicraft_hf.data.folders import folder_rows
    from medicraft_hf.data.problems import Problems

    problems = Problems()
    class_names, rows = folder_rows(folder, ["healthy", "nevus"], problems)  # a dataset needs two classes
    origins: list[str] = []

    def recorded():
        for row in rows:
            origins.append(row["origin"])
            yield row

    dataset = rows_to_dataset(recorded(), class_names, size=SIZE, skip_invalid=True, problems=problems)
    skipped = problems.skipped_files()
    written = [o for o in origins if o not in skipped]
    if len(written) != len(dataset):
        raise AssertionError(f"{len(dataset)} rows written but {len(written)} origins not reported as problems")
    def file_of(origin: str) -> str:
        return origin.rsplit("[", 1)[0] if origin.endswith("]") else origin

    accounted = {file_of(o) for o in written} | {file_of(f) for f in skipped}
    silent = sorted(str(f) for f in files if str(f) not in accounted)
    if silent:
        raise AssertionError(f"{len(silent)} file(s) silently dropped by the build, e.g. {silent[:3]}")
    return {"files": len(files), "rows": len(dataset), "problems": len(problems),
            "files_with_rows": len({file_of(o) for o in written})}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run(count: int, seed: int = 0, build_sample: int = 500, max_pixels: int | None = None) -> dict:
    start = time.perf_counter()
    outcomes: Counter = Counter()
    reasons: Counter = Counter()
    crashes: list[str] = []
    largest_growth = 0.0
    with tempfile.TemporaryDirectory(prefix="fuzz-inputs-") as tmp:
        corpus = write_corpus(Path(tmp) / "in", count, seed)
        for fmt in FORMATS:  # warm-up: readers import their plugins (pydicom, oct-converter) once
            warm = Path(tmp) / f"healthy-seed-1{SUFFIX[fmt]}"
            warm.write_bytes(seed_bytes(fmt, seed))
            assert judge(warm, max_pixels)[0] == "row", f"the {fmt} seed file is not read as a row"
        for path, fmt, kind in corpus:
            before = peak_rss_mb()
            try:
                outcome, detail = judge(path, max_pixels)
            except Exception:  # a crash: counted, and the run fails
                outcome, detail = "crash", traceback.format_exc(limit=3)
                crashes.append(f"{path.name} ({fmt}, {kind}): {detail.strip().splitlines()[-1]}")
            largest_growth = max(largest_growth, peak_rss_mb() - before)
            outcomes[(fmt, outcome)] += 1
            if outcome == "problem":
                reasons[reason_kind(detail)] += 1
        judged_s = time.perf_counter() - start
        sample_folder = Path(tmp) / "sample"
        for path, _, _ in corpus[:build_sample]:
            (sample_folder / "healthy").mkdir(parents=True, exist_ok=True)
            path.rename(sample_folder / "healthy" / path.name)
        sample_files = sorted((sample_folder / "healthy").iterdir()) if build_sample else []
        accounts = build_accounts(sample_folder, sample_files) if sample_files else None
    per_format = {fmt: {o: outcomes[(fmt, o)] for o in ("row", "problem", "crash")} for fmt in FORMATS}
    return {
        "files": count, "seed": seed,
        "per_format": per_format,
        "totals": {o: sum(v[o] for v in per_format.values()) for o in ("row", "problem", "crash")},
        "problem_reasons": dict(reasons.most_common()),
        "crashes": crashes[:20],
        "build_sample": accounts,
        "seconds_judging": round(judged_s, 2),
        "seconds_total": round(time.perf_counter() - start, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "largest_rss_growth_on_one_file_mb": round(largest_growth, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=3000, help="mutated files (formats in turn)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--build-sample", type=int, default=500, help="files also built end to end")
    parser.add_argument("--max-pixels", type=int, default=None, help="pixel budget (default: the library's)")
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # PIL and pydicom warn on most damaged files; the counts say it
    result = run(args.count, args.seed, args.build_sample, args.max_pixels)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 1 if result["totals"]["crash"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
