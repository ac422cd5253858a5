#!/usr/bin/env python
"""Compare trained OCT autoencoders side by side on held-out scans (docs/latent.md).

    OMP_NUM_THREADS=1 python benchmarks/bench_vae_compression.py \
        --dataset /work/runs/vae-data/phantom-256x512 --split test \
        --vae /work/runs/vae-f4c4/out /work/runs/vae-f8c4/out --json /work/runs/vae-compare.json

For each VAE: PSNR, SSIM, the retina's gray-level histogram distance and speckle
autocorrelation widths (`medicraft_hf.vae_quality`), the anatomy check's verdict agreement
between originals and reconstructions, and encode+decode seconds per image. Two references
frame the numbers: a 3x3 box blur of the original (what pixel metrics reward) and the original
itself (the speckle widths to match).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import uniform_filter

from medicraft_hf.data.load import load_oct_dataset
from medicraft_hf.evaluation.anatomy import check_anatomy
from medicraft_hf.training.autoencoder import as_uint8
from medicraft_hf.training.latents import load_vae
from medicraft_hf.vae import encode
from medicraft_hf.vae_quality import compare, retina_mask, summarize


def reconstruct_uint8(vae, image: np.ndarray) -> tuple[np.ndarray, float]:
    x = torch.from_numpy(image.astype(np.float32) / 127.5 - 1)[None, None]
    start = time.process_time()  # CPU seconds: wall time on a shared machine measures the neighbours
    with torch.no_grad():
        latents = encode(vae, x)
        decoded = vae.decode(latents / vae.config.scaling_factor).sample
    return as_uint8(decoded)[0], time.process_time() - start


def evaluate(name, rows, make):
    results, agree, seconds = [], 0, []
    for image, mask, verdict in rows:
        recon, took = make(image)
        seconds.append(took)
        results.append(compare(image, recon, mask))
        agree += check_anatomy(recon).verdict == verdict
    summary = summarize(results)
    summary["anatomy_agreement"] = agree / len(rows)
    summary["seconds_per_image"] = float(np.mean(seconds))
    print(f"{name:>12}: PSNR {summary['psnr']['mean']:.2f} dB, SSIM {summary['ssim']['mean']:.3f}, "
          f"hist W1 {summary['histogram_w1']['mean']:.2f}, ACW axial {summary['acw_axial']['mean']:.2f} "
          f"(orig {summary['acw_axial_original']['mean']:.2f}), lateral {summary['acw_lateral']['mean']:.2f} "
          f"(orig {summary['acw_lateral_original']['mean']:.2f}), anatomy agreement {agree}/{len(rows)}, "
          f"{summary['seconds_per_image']:.2f} CPU s/img", flush=True)
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--vae", nargs="+", required=True, help="VAE folders (training/train_vae.py output_dir).")
    p.add_argument("--limit", type=int, default=None, help="First N scans of the split.")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    ds = load_oct_dataset(args.dataset)[args.split]
    if args.limit:
        ds = ds.select(range(min(args.limit, len(ds))))
    rows = []
    for item in ds:
        image = np.asarray(item["image"].convert("L"))
        rows.append((image, retina_mask(item["ground_truth"], image.shape), check_anatomy(image).verdict))
    print(f"{len(rows)} scans of {Path(args.dataset).name}[{args.split}], {rows[0][0].shape[0]}x{rows[0][0].shape[1]}")

    report = {"dataset": Path(args.dataset).name, "split": args.split, "scans": len(rows), "models": {}}
    report["models"]["box-blur-3x3"] = evaluate(
        "box blur 3x3", rows, lambda im: (np.round(uniform_filter(im.astype(np.float64), 3)).astype(np.uint8), 0.0))
    for folder in args.vae:
        vae = load_vae(folder)
        name = Path(folder).parent.name if Path(folder).name == "out" else Path(folder).name
        report["models"][name] = evaluate(name, rows, lambda im, vae=vae: reconstruct_uint8(vae, im))
        report["models"][name]["config"] = {k: vae.config[k] for k in ("block_out_channels", "latent_channels",
                                                                       "scaling_factor")}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=list) + "\n")


if __name__ == "__main__":
    main()
