"""Dataset build throughput and peak memory for N phantom B-scans (default 10,000 at 256x512).

    OMP_NUM_THREADS=1 python benchmarks/bench_dataset_build.py [--num-images 10000] [--size 256x512]

Phases, each timed: phantom rendering (inside the row generator, measured separately so the
build figure is the build alone), rows -> Dataset (validation, grayscale, pixel hash,
PNG encoding, Arrow write), patient-level split, save as parquet + card (Hub layout), and
load back with `load_oct_dataset`. Peak RSS is the process maximum (`ru_maxrss`).

Rendering 10,000 phantom B-scans takes most of an hour on a busy 2-core machine, and it is
not what this measures: `--render-patients K` renders K patients (12 B-scans each) once,
keeps them as PNG files on disk, and makes the other patients from them by a mirror
(the fellow eye) and a patient-specific lateral shift, so every image is still distinct.
"""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from medicraft_hf.data.build import rows_to_dataset, save_dataset_dict
from medicraft_hf.data.load import load_oct_dataset
from medicraft_hf.data.phantom import phantom_rows
from medicraft_hf.data.split import split_by_patient
from medicraft_hf.parsing import parse_size
from medicraft_hf.schema import RADIAL_PLANES_DEG


class Timed:
    """Wrap an iterator and add up the time spent producing its items."""

    def __init__(self, iterable):
        self.iterator, self.seconds, self.count = iter(iterable), 0.0, 0

    def __iter__(self):
        return self

    def __next__(self):
        start = time.perf_counter()
        try:
            return next(self.iterator)
        finally:
            self.seconds += time.perf_counter() - start
            self.count += 1


def reused_phantom_rows(patients: int, render: int, size, folder: Path):
    """`patients` phantom exams made from `render` rendered ones (see the module docstring)."""
    pool = []
    for i, row in enumerate(phantom_rows(render, seed=0, size=size)):
        path = folder / f"{i:06d}.png"
        row["image"].save(path)
        pool.append({**row, "image": path})
    per_exam = len(RADIAL_PLANES_DEG)
    for p in range(patients):
        variant, base = divmod(p, render)  # variant 0: the rendered exam itself
        for j in range(per_exam):
            row = dict(pool[base * per_exam + j])
            pixels = np.asarray(Image.open(row["image"]))
            if variant:
                pixels = np.roll(pixels[:, ::-1] if variant % 2 else pixels, 7 * variant, axis=1)
            row.update(image=pixels, patient_id=f"phantom-{p + 1:05d}", exam_id=f"phantom-{p + 1:05d}-e1",
                       image_id=f"bench-{p + 1:05d}-{j:02d}", ground_truth=None)
            yield row


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class PeakAnonymous:
    """Sample the process's anonymous (heap) memory, which RSS mixes with mapped Arrow files (Linux)."""

    def __init__(self, every_s: float = 0.2):
        self.peak_mib, self.every_s = 0.0, every_s
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            with open("/proc/self/smaps_rollup") as f:
                kib = next(int(line.split()[1]) for line in f if line.startswith("Anonymous:"))
            self.peak_mib = max(self.peak_mib, kib / 1024)
            time.sleep(self.every_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=10_000)
    parser.add_argument("--size", default="256x512", help="HxW")
    parser.add_argument("--render-patients", type=int, default=None,
                        help="render only this many patients and derive the rest (default: render all)")
    parser.add_argument("--out", default=None, help="where to save (default: a temporary folder, removed after)")
    args = parser.parse_args()
    size = parse_size(args.size, "--size")
    patients = math.ceil(args.num_images / len(RADIAL_PLANES_DEG))
    anonymous = PeakAnonymous()
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-build-")) / "phantom"

    if args.render_patients:
        (work.parent / "pool").mkdir(parents=True, exist_ok=True)
        rows = Timed(reused_phantom_rows(patients, args.render_patients, size, work.parent / "pool"))
    else:
        rows = Timed(phantom_rows(patients, seed=0, size=size))
    start = time.perf_counter()
    dataset = rows_to_dataset(rows)
    build_total = time.perf_counter() - start
    n = len(dataset)
    build_only = build_total - rows.seconds
    rss_build, anon_build = peak_rss_mib(), anonymous.peak_mib

    start = time.perf_counter()
    dsdict = split_by_patient(dataset, seed=0)
    split_s = time.perf_counter() - start
    start = time.perf_counter()
    save_dataset_dict(dsdict, work)
    save_s = time.perf_counter() - start
    rss_save, anon_save = peak_rss_mib(), anonymous.peak_mib
    start = time.perf_counter()
    back = load_oct_dataset(work)
    load_s = time.perf_counter() - start
    assert sum(len(d) for d in back.values()) == n
    parquet_mib = sum(p.stat().st_size for p in (work / "data").glob("*.parquet")) / 2**20

    print(f"images: {n} at {size[0]}x{size[1]} ({patients} phantom patients)")
    rendered = f" ({args.render_patients} patients rendered, the rest derived)" if args.render_patients else ""
    print(f"phantom rows{rendered}: {rows.seconds:.1f} s = {n / rows.seconds:.1f} B-scans/s")
    print(f"rows -> Dataset (build only, rendering excluded): {build_only:.1f} s = {n / build_only:.1f} images/s")
    print(f"split by patient: {split_s:.2f} s; save parquet + card: {save_s:.1f} s; load + checks: {load_s:.1f} s")
    print(f"end to end build (render + build + split + save): {build_total + split_s + save_s:.1f} s "
          f"= {n / (build_total + split_s + save_s):.1f} images/s")
    print(f"parquet on disk: {parquet_mib:.1f} MiB; peak RSS after build: {rss_build:.0f} MiB, "
          f"after split + save: {rss_save:.0f} MiB, after load: {peak_rss_mib():.0f} MiB "
          "(RSS counts the memory-mapped Arrow pages read)")
    print(f"peak anonymous (heap) memory after build: {anon_build:.0f} MiB, after split + save: {anon_save:.0f} MiB, "
          f"after load: {anonymous.peak_mib:.0f} MiB")
    if not args.out:
        shutil.rmtree(work.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
