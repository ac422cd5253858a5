"""Peak memory of `generate_dataset` as the image count grows (default 100 vs 2,000 images).

    OMP_NUM_THREADS=1 python benchmarks/bench_generate_memory.py [--counts 100,2000] [--resolution 128x256]

Each count runs in a fresh process (peak RSS, `ru_maxrss`, is a process maximum) through
the whole job: sampling, parquet shards, the final dataset in Hub layout and its card.
The model is a small attention-free class-conditional UNet with random weights and one
sampling step, so the run is fast while each image is still large enough for holding all
of them to show: the raw pixels of every image are printed beside the memory figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class AnonPeak(threading.Thread):
    """Peak anonymous memory (heap, tensors), sampled: RSS also counts memory-mapped files
    (the Arrow cache `datasets` reads through mmap), which the kernel can drop at will."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak_kib = 0

    def run(self):
        while True:
            with open("/proc/self/status") as f:
                anon = next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))
            self.peak_kib = max(self.peak_kib, anon)
            time.sleep(0.02)


def child(count: int, resolution: str, batch_size: int) -> None:
    import torch
    from diffusers import DDPMScheduler, UNet2DModel

    from medicraft_hf.generate import generate_dataset
    from medicraft_hf.parsing import parse_resolution
    from medicraft_hf.pipeline import OCTDiffusionPipeline
    from medicraft_hf.schema import CLASS_NAMES

    size = parse_resolution(resolution)
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=size, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                       layers_per_block=1, down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2,
                       add_attention=False, num_class_embeds=len(CLASS_NAMES) + 1, norm_num_groups=8)
    pipe = OCTDiffusionPipeline(unet, DDPMScheduler(), class_names=list(CLASS_NAMES))
    out = Path(tempfile.mkdtemp(prefix="bench-generate-")) / "synthetic"
    per_class, extra = divmod(count, len(CLASS_NAMES))
    counts = {name: per_class + (i < extra) for i, name in enumerate(CLASS_NAMES)}
    baseline = rss_mib()
    anon = AnonPeak()
    anon.start()
    start = time.perf_counter()
    generate_dataset(out, {k: v for k, v in counts.items() if v}, pipe=pipe, model="bench/attention-free",
                     num_inference_steps=1, batch_size=batch_size, progress=False)
    seconds = time.perf_counter() - start
    parquet = sum(p.stat().st_size for p in (out / "data").glob("*.parquet"))
    print(json.dumps({"count": count, "seconds": seconds, "baseline_mib": baseline, "peak_mib": rss_mib(),
                      "peak_anon_mib": anon.peak_kib / 1024,
                      "raw_pixels_mib": count * size[0] * size[1] / 2**20, "parquet_mib": parquet / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="100,2000")
    parser.add_argument("--resolution", default="128x256", help="HxW")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child, args.resolution, args.batch_size)

    print(f"{'images':>7} {'seconds':>8} {'images/s':>9} {'RSS before':>11} {'peak RSS':>9} {'growth':>7} "
          f"{'peak anon':>10} {'all pixels':>11} {'parquet':>8}   (MiB)")
    for count in (int(c) for c in args.counts.split(",")):
        proc = subprocess.run([sys.executable, __file__, "--child", str(count), "--resolution", args.resolution,
                               "--batch-size", str(args.batch_size)], capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{count:>7} {r['seconds']:>8.1f} {count / r['seconds']:>9.1f} {r['baseline_mib']:>11.0f} "
              f"{r['peak_mib']:>9.0f} {r['peak_mib'] - r['baseline_mib']:>7.0f} {r['peak_anon_mib']:>10.0f} "
              f"{r['raw_pixels_mib']:>11.1f} "
              f"{r['parquet_mib']:>8.1f}")


if __name__ == "__main__":
    main()
