"""Phantom throughput on one core (numpy/scipy threads pinned to 1).

    python benchmarks/bench_phantom.py --size 256x512 --num-patients 4       # B-scans/s
    python benchmarks/bench_phantom.py --size 256x512 --build 834            # + dataset build of 10,008 images

`--build N` also builds and saves an N-patient phantom dataset (12 images each) the way
`medicraft phantom` does and reports images/s and the peak resident memory.
"""

import argparse
import os
import resource
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from medicraft_hf.data.phantom import build_phantom_dataset, phantom_rows, save_phantom_dataset  # noqa: E402
from medicraft_hf.parsing import parse_size  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256x512")
    parser.add_argument("--num-patients", type=int, default=4, help="12 B-scans each, for the rendering figure")
    parser.add_argument("--build", type=int, default=0, help="also build and save a dataset of this many patients")
    args = parser.parse_args()
    size = parse_size(args.size, "--size")
    start, cpu = time.perf_counter(), time.process_time()
    n = sum(1 for _ in phantom_rows(args.num_patients, seed=0, size=size))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"phantom {size[0]}x{size[1]}: {n} B-scans in {wall:.2f} s wall / {cpu:.2f} s CPU -> "
          f"{n / wall:.1f} B-scans/s wall, {n / cpu:.1f} B-scans/s per CPU-second (one core)")
    if args.build:
        with tempfile.TemporaryDirectory() as tmp:
            start, cpu = time.perf_counter(), time.process_time()
            dsdict = build_phantom_dataset(args.build, seed=0, size=size)
            save_phantom_dataset(dsdict, os.path.join(tmp, "phantom"), size=size)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        n = sum(len(ds) for ds in dsdict.values())
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"build+save {n} images {size[0]}x{size[1]}: {wall:.1f} s wall / {cpu:.1f} s CPU -> "
              f"{n / wall:.1f} images/s wall, {n / cpu:.1f} images/s per CPU-second; peak RSS {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
