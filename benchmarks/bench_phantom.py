"""Phantom throughput: B-scans per second on one core (numpy/scipy threads pinned to 1).

    OMP_NUM_THREADS=1 python benchmarks/bench_phantom.py --size 256x512 --num-patients 4
"""

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from medicraft_hf.data.phantom import phantom_rows  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256x512")
    parser.add_argument("--num-patients", type=int, default=4, help="12 B-scans each")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    start, cpu = time.perf_counter(), time.process_time()
    n = sum(1 for _ in phantom_rows(args.num_patients, seed=0, size=size))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"phantom {size[0]}x{size[1]}: {n} B-scans in {wall:.2f} s wall / {cpu:.2f} s CPU -> "
          f"{n / wall:.1f} B-scans/s wall, {n / cpu:.1f} B-scans/s per CPU-second (one core)")


if __name__ == "__main__":
    main()
