"""How well an autoencoder keeps OCT B-scans: PSNR and SSIM over the image, and the speckle's
intensity histogram and grain size inside the retina (between the ILM and the RPE).

Speckle is noise: no autoencoder reproduces its exact pattern, so pixel metrics alone reward a
blur. The speckle statistics say whether a reconstruction still *looks* like OCT: its gray-level
distribution in the retina (1-D Wasserstein distance to the original's, in gray levels) and the
width of its autocorrelation (grains of the right size, axially and laterally).
"""

from __future__ import annotations

import json

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.stats import wasserstein_distance
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

MAX_LAG = 12  # pixels; speckle grains are a few pixels wide


def retina_mask(ground_truth, shape: tuple[int, int]) -> np.ndarray:
    """Pixels between the ILM and the RPE of a phantom scan's ground truth (`ground_truth` column)."""
    gt = json.loads(ground_truth) if isinstance(ground_truth, str) else ground_truth
    height, width = shape
    gt_h, gt_w = gt["size"]
    xs = np.arange(width) * gt_w / width
    ilm = np.interp(xs, gt["surface_x"], gt["ilm_y"]) * height / gt_h
    rpe = np.interp(xs, gt["surface_x"], gt["rpe_y"]) * height / gt_h
    rows = np.arange(height)[:, None]
    return (rows >= ilm[None, :]) & (rows <= rpe[None, :])


def autocorrelation_width(image: np.ndarray, mask: np.ndarray, axis: int) -> float:
    """Half width at half maximum (pixels) of the speckle's autocorrelation along `axis` (0: axial,
    1: lateral), over pixel pairs inside `mask`; the layers' slow variation is removed first."""
    img = image.astype(np.float64)
    residual = img - gaussian_filter(img, sigma=6)
    values = residual[mask]
    residual = residual - values.mean()
    variance = (residual[mask] ** 2).mean()
    corr = [1.0]
    for lag in range(1, MAX_LAG + 1):
        if axis == 0:
            a, b, m = residual[:-lag], residual[lag:], mask[:-lag] & mask[lag:]
        else:
            a, b, m = residual[:, :-lag], residual[:, lag:], mask[:, :-lag] & mask[:, lag:]
        corr.append(float((a[m] * b[m]).mean() / variance))
        if corr[-1] < 0.5:  # linear interpolation between the lags around one half
            return lag - 1 + (corr[-2] - 0.5) / (corr[-2] - corr[-1])
    return float(MAX_LAG)


def compare(original: np.ndarray, reconstruction: np.ndarray, mask: np.ndarray) -> dict:
    """Metrics of one uint8 reconstruction against its uint8 original."""
    o, r = original.astype(np.float64), reconstruction.astype(np.float64)
    return {
        "psnr": float(peak_signal_noise_ratio(o, r, data_range=255)),
        "ssim": float(structural_similarity(o, r, data_range=255)),
        "histogram_w1": float(wasserstein_distance(o[mask], r[mask])),
        "acw_axial_original": autocorrelation_width(o, mask, 0),
        "acw_axial": autocorrelation_width(r, mask, 0),
        "acw_lateral_original": autocorrelation_width(o, mask, 1),
        "acw_lateral": autocorrelation_width(r, mask, 1),
    }


def summarize(rows: list[dict]) -> dict:
    """Mean and standard deviation of every metric over scans."""
    return {key: {"mean": float(np.mean([r[key] for r in rows])), "std": float(np.std([r[key] for r in rows]))}
            for key in rows[0]}
