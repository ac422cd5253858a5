"""Fidelity of synthetic images: FID, KID (with its standard error) and k-NN precision /
recall, overall and per class, in the feature space of the classifier trained on real
data (so nothing is downloaded; numbers are comparable within this project, not with
Inception-based FIDs in papers).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

# k of the k-NN manifolds (Kynkäänniemi et al., NeurIPS 2019, use k=3).
PR_K = 3
# Disjoint blocks for KID: block estimates are independent, so their spread gives a
# proper standard error of the mean (overlapping random subsets would not).
KID_BLOCKS = 10


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature sets (rows = samples)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():  # near-singular product: regularise as in pytorch-fid
        eps = np.eye(a.shape[1]) * 1e-6
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = covmean.real
    fid = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))
    return max(fid, 0.0)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    # Cubic polynomial kernel k(x, y) = (x.y / d + 1)^3 (Binkowski et al., ICLR 2018).
    d = x.shape[1]
    kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
    m, n = len(x), len(y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()
    )


def kernel_inception_distance(
    a: np.ndarray, b: np.ndarray, blocks: int = KID_BLOCKS, seed: int = 0
) -> tuple[float, float | None]:
    """(KID, its standard error): mean and SE of unbiased MMD^2 over disjoint random blocks
    (SE None when there are too few images for two blocks)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    blocks = max(1, min(blocks, len(a) // 2, len(b) // 2))
    rng = np.random.default_rng(seed)
    a_blocks = np.array_split(rng.permutation(len(a)), blocks)
    b_blocks = np.array_split(rng.permutation(len(b)), blocks)
    values = np.array([_mmd2_unbiased(a[i], b[j]) for i, j in zip(a_blocks, b_blocks)])
    se = float(values.std(ddof=1) / np.sqrt(blocks)) if blocks > 1 else None
    return float(values.mean()), se


def _kth_neighbour_radii(x: np.ndarray, k: int) -> np.ndarray:
    d = _pairwise(x, x)
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0))


def precision_recall(real: np.ndarray, synthetic: np.ndarray, k: int = PR_K) -> tuple[float, float]:
    """Improved precision (synthetic inside the real manifold) and recall (real inside the
    synthetic manifold), manifolds being unions of k-th-nearest-neighbour balls."""
    real, synthetic = np.asarray(real, np.float64), np.asarray(synthetic, np.float64)
    d = _pairwise(synthetic, real)
    precision = float((d <= _kth_neighbour_radii(real, k)[None, :]).any(axis=1).mean())
    recall = float((d.T <= _kth_neighbour_radii(synthetic, k)[None, :]).any(axis=1).mean())
    return precision, recall


def fidelity_metrics(real: np.ndarray, synthetic: np.ndarray, k: int = PR_K) -> dict:
    """FID, KID ± SE, precision and recall between two feature sets."""
    if min(len(real), len(synthetic)) <= k + 1:
        return {
            "n_real": len(real), "n_synthetic": len(synthetic), "fid": None, "kid": None, "kid_se": None,
            "precision": None, "recall": None, "note": f"needs more than {k + 1} images per side",
        }  # fmt: skip
    kid, kid_se = kernel_inception_distance(real, synthetic)
    precision, recall = precision_recall(real, synthetic, k)
    result = {
        "n_real": len(real),
        "n_synthetic": len(synthetic),
        "fid": frechet_distance(real, synthetic),
        "kid": kid,
        "kid_se": kid_se,
        "precision": precision,
        "recall": recall,
    }
    if min(len(real), len(synthetic)) <= real.shape[1]:
        # Fewer images than feature dimensions: singular covariances bias FID upwards.
        result["note"] = f"FID from fewer images than feature dimensions ({real.shape[1]}): compare only like with like"
    return result


def fidelity_report(
    real_features, real_labels, synthetic_features, synthetic_labels, class_names, reference_features=None, reference_labels=None
) -> dict:
    """Overall and per-class fidelity of synthetic vs real (train) features.

    `reference_*` (real held-out features) give the same numbers for real-vs-real, the
    floor a perfect generator would reach with this many images.
    """
    report = {"feature_space": "CLS features of the ViT trained on real data (TRTR, first seed)", "k": PR_K}
    report["overall"] = fidelity_metrics(real_features, synthetic_features)
    report["per_class"] = {
        name: fidelity_metrics(real_features[real_labels == c], synthetic_features[synthetic_labels == c])
        for c, name in enumerate(class_names)
    }
    if reference_features is not None:
        report["real_heldout_vs_real_train"] = {
            "overall": fidelity_metrics(real_features, reference_features),
            "per_class": {
                name: fidelity_metrics(real_features[real_labels == c], reference_features[reference_labels == c])
                for c, name in enumerate(class_names)
            },
        }
    return report
