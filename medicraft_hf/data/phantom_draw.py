"""The phantom's drawing primitives: soft shapes, blobs, textures and speckle.

Small numpy helpers that know nothing about anatomy; `phantom_render` composes them.
Each one that takes a `Generator` draws from it in a fixed order, so the same seed
gives the same pixels.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def smooth_disc(dist: np.ndarray, radius: float, edge: float) -> np.ndarray:
    """1 inside a disc, 0 outside, with a smooth (raised-cosine) rim of width `edge`."""
    t = np.clip((radius - dist) / max(edge, 1e-6), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * t)


def dome(dist: np.ndarray, radius: float) -> np.ndarray:
    """Height profile of a dome: 1 at the centre, 0 at `radius` and beyond."""
    u = np.clip(dist / max(radius, 1e-6), 0.0, 1.0)
    return (1.0 - u**2) ** 1.5  # smooth, sloping margins


def stamp(img: np.ndarray, yc: float, xc: float, ry: float, rx: float, value: float) -> None:
    """Draw a small bright Gaussian blob in place (only its neighbourhood is touched)."""
    H, W = img.shape
    y0, y1 = max(int(yc - 3 * ry), 0), min(int(yc + 3 * ry) + 2, H)
    x0, x1 = max(int(xc - 3 * rx), 0), min(int(xc + 3 * rx) + 2, W)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.ogrid[y0:y1, x0:x1]
    g = np.exp(-(((yy - yc) / ry) ** 2 + ((xx - xc) / rx) ** 2))
    patch = img[y0:y1, x0:x1]
    np.maximum(patch, patch * (1 - g) + value * g, out=patch)  # blend: no halo in dark surroundings


def scramble_layers(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Corrupt the layering: vertical strips shifted, flipped and bands swapped."""
    H, W = img.shape
    out = img.copy()
    edges = np.sort(rng.choice(np.arange(W // 16, W - W // 16), size=int(rng.integers(4, 8)), replace=False))
    for a, b in zip(np.r_[0, edges], np.r_[edges, W]):
        strip = np.roll(img[:, a:b], int(rng.integers(-H // 3, H // 3)), axis=0)
        if rng.random() < 0.5:
            strip = strip[::-1]
        out[:, a:b] = strip
    # Swap two horizontal bands: a bright layer ends up where a dark one belongs.
    h = H // 5
    y0, y1 = rng.choice(np.arange(0, H - h), size=2, replace=False)
    out[y0:y0 + h], out[y1:y1 + h] = out[y1:y1 + h].copy(), out[y0:y0 + h].copy()
    return out


def choroid_texture(rng: np.random.Generator, depth_px: int, width: int, px_um: tuple[float, float]) -> np.ndarray:
    """Choroid in coordinates flattened to Bruch's membrane: granular stroma, dark vessels.

    Vessel lumens grow with depth (Sattler's, then Haller's layer) and are elongated
    laterally. Returns display reflectivity, shape (depth_px, width).
    """
    um_y, um_x = px_um
    tex = 0.56 + 0.05 * gaussian_filter(rng.standard_normal((depth_px, width)), (1.0, 1.5))
    tex[: max(1, round(10 / um_y))] = 0.66  # choriocapillaris: thin brighter line under the RPE
    yy = np.arange(depth_px)[:, None]
    xx = np.arange(width)[None, :]
    n_vessels = int(width * um_x / 1000 * 26)  # lumens per mm of scan
    for _ in range(n_vessels):
        d_um = rng.uniform(25, 330) ** 1.0
        r_um = 10 + 0.2 * d_um * rng.uniform(0.6, 1.4)  # deeper vessels are larger
        cy, cx = d_um / um_y, rng.uniform(0, width)
        ry, rx = max(r_um / um_y, 0.7), max(rng.uniform(1.5, 3.0) * r_um / um_x, 0.7)
        y0, y1 = int(max(cy - ry - 1, 0)), int(min(cy + ry + 2, depth_px))
        x0, x1 = int(max(cx - rx - 1, 0)), int(min(cx + rx + 2, width))
        if y0 >= y1 or x0 >= x1:
            continue
        inside = ((yy[y0:y1] - cy) / ry) ** 2 + ((xx[:, x0:x1] - cx) / rx) ** 2
        lumen = np.clip(2.0 * (1.0 - inside), 0.0, 1.0)  # soft edge
        tex[y0:y1, x0:x1] = tex[y0:y1, x0:x1] * (1 - lumen) + 0.2 * lumen
    return tex


def speckle(rng: np.random.Generator, shape: tuple[int, int], grain_px: tuple[float, float], sigma: float) -> np.ndarray:
    """Log of multiplicative speckle, standard deviation `sigma` (natural log units).

    Fully developed speckle has exponential intensity (Rayleigh amplitude); a lateral
    blur elongates the grains. The caller scales `sigma` down for averaged looks.
    """
    s = np.log(gaussian_filter(rng.standard_exponential(size=shape, dtype=np.float32), grain_px) + 1e-3)
    return (s - s.mean()) / (s.std() + 1e-9) * sigma
