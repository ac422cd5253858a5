#!/usr/bin/env python
"""Compare trained OCT autoencoders side by side on held-out scans (docs/latent.md).

    OMP_NUM_THREADS=1 python benchmarks/bench_vae_compression.py \
        --dataset /work/runs/vae-data/phantom-256x512 --split test \
        --vae /work/runs/vae-f4c4/out /work/runs/vae-f8c4/out --json /work/runs/vae-compare.json

For each VAE: PSNR, SSIM, the retina's gray-level histogram distance and speckle
autocorrelation widths (`medicraft_hf.vae_quality`), the anatomy check's verdict agreement
between originals and reconstructions, and encode+decode seconds per image. With
`--classifier` (a real-trained ViT saved by `medicraft evaluate`, e.g.
`<report>/runs/TRTR-seed0-model`): its accuracy and balanced accuracy on the originals and on
each VAE's reconstructions, and how often the two predictions agree. Two references
frame the numbers: a 3x3 box blur of the original (what pixel metrics reward) and the original
itself (the speckle widths to match). With `--latents-from TEACHER` every `--vae` decodes the
teacher's latents instead of its own: how a decoder distilled from it (`train_vae.py
--teacher_vae`) is used in a latent pipeline, and how it is judged here.
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


def reconstruct_uint8(vae, image: np.ndarray, encoder=None) -> tuple[np.ndarray, float]:
    """`image` encoded by `encoder` (default: `vae`) and decoded by `vae`; and the CPU seconds it took."""
    encoder = encoder or vae
    x = torch.from_numpy(image.astype(np.float32) / 127.5 - 1)[None, None]
    start = time.process_time()  # CPU seconds: wall time on a shared machine measures the neighbours
    with torch.no_grad():
        latents = encode(encoder, x)
        decoded = vae.decode(latents / encoder.config.scaling_factor + (encoder.config.shift_factor or 0.0)).sample
    return as_uint8(decoded)[0], time.process_time() - start


def classify(classifier, images: list[np.ndarray], labels) -> tuple[np.ndarray, dict]:
    """The classifier's predictions on uint8 images (resized to its input size), and its scores."""
    from PIL import Image

    from medicraft_hf.evaluation.classifier import embed_and_predict
    from medicraft_hf.evaluation.inputs import ImageSet
    from medicraft_hf.evaluation.uncertainty import score

    h, w = classifier.config.image_size
    resized = np.stack([np.asarray(Image.fromarray(im).resize((w, h), Image.Resampling.BILINEAR)) for im in images])
    labels = np.asarray(labels)
    with torch.no_grad():
        _, probs = embed_and_predict(classifier, ImageSet(resized, labels, [str(i) for i in range(len(labels))], "x"))
    probs = np.asarray(probs)
    metrics = score(probs, labels, probs.shape[1])
    return probs.argmax(1), {"accuracy": metrics["accuracy"], "balanced_accuracy": metrics["balanced_accuracy"]}


def evaluate(name, rows, make, classifier=None, original_predictions=None):
    results, agree, seconds, reconstructions = [], 0, [], []
    for image, mask, verdict, _ in rows:
        recon, took = make(image)
        seconds.append(took)
        results.append(compare(image, recon, mask))
        agree += check_anatomy(recon).verdict == verdict
        if classifier is not None:
            reconstructions.append(recon)
    summary = summarize(results)
    summary["anatomy_agreement"] = agree / len(rows)
    summary["seconds_per_image"] = float(np.mean(seconds))
    if classifier is not None:
        predicted, summary["classifier"] = classify(classifier, reconstructions, [r[3] for r in rows])
        summary["classifier"]["agreement_with_originals"] = float((predicted == original_predictions).mean())
        print(f"{name:>12}: classifier {summary['classifier']}", flush=True)
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
    p.add_argument("--limit", type=int, default=None, help="First N scans of the split (after --every).")
    p.add_argument("--every", type=int, default=1, help="Every K-th scan of the split (spreads a subset).")
    p.add_argument("--latents-from", default=None,
                   help="Encode with this VAE and decode with each --vae (decoders distilled from it).")
    p.add_argument("--classifier", default=None, help="Saved real-trained ViT folder (medicraft evaluate's runs/).")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    ds = load_oct_dataset(args.dataset)[args.split]
    if args.every > 1:
        ds = ds.select(range(0, len(ds), args.every))
    if args.limit:
        ds = ds.select(range(min(args.limit, len(ds))))
    rows = []
    for item in ds:
        image = np.asarray(item["image"].convert("L"))
        rows.append((image, retina_mask(item["ground_truth"], image.shape), check_anatomy(image).verdict,
                     item["label"]))
    print(f"{len(rows)} scans of {Path(args.dataset).name}[{args.split}], {rows[0][0].shape[0]}x{rows[0][0].shape[1]}")

    report = {"dataset": Path(args.dataset).name, "split": args.split, "scans": len(rows), "models": {}}
    classifier = original_predictions = None
    if args.classifier:
        from transformers import ViTForImageClassification

        classifier = ViTForImageClassification.from_pretrained(args.classifier, use_safetensors=True)
        original_predictions, report["classifier_on_originals"] = classify(classifier, [r[0] for r in rows],
                                                                           [r[3] for r in rows])
        report["classifier"] = str(args.classifier)
        print(f"    original: classifier {report['classifier_on_originals']}", flush=True)
    report["models"]["box-blur-3x3"] = evaluate(
        "box blur 3x3", rows, lambda im: (np.round(uniform_filter(im.astype(np.float64), 3)).astype(np.uint8), 0.0),
        classifier, original_predictions)
    encoder = load_vae(args.latents_from) if args.latents_from else None
    if encoder is not None:
        report["latents_from"] = str(args.latents_from)
    for folder in args.vae:
        vae = load_vae(folder)
        name = Path(folder).parent.name if Path(folder).name == "out" else Path(folder).name
        report["models"][name] = evaluate(name, rows, lambda im, vae=vae: reconstruct_uint8(vae, im, encoder),
                                          classifier, original_predictions)
        report["models"][name]["config"] = {k: vae.config[k] for k in ("block_out_channels", "latent_channels",
                                                                       "scaling_factor")}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=list) + "\n")


if __name__ == "__main__":
    main()
