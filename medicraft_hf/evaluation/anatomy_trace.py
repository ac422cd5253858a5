"""Surface tracing for the anatomy check: ILM and RPE as minimum-cost paths over columns.

A per-column argmax jumps wherever the strongest edge of one column is a different layer
than its neighbour's (at a deep foveal floor the first bright layer under the vitreous is
the dark ONL, and the argmax drops to the ellipsoid zone). Here each surface is one path
through the image, found by dynamic programming over the columns: every column adds the
cost of the row it passes (an edge or band measure) and every step between neighbouring
columns adds `STEP_COST` per row moved, up to `MAX_STEP` rows. The path may follow a deep
narrow pit, the steep wall of a dome or the roof of a fluid pocket, but cannot teleport
to another layer for a few columns.

Everything works on the check's working grid (`anatomy.WORK_SIZE`); rows and columns
below are working-grid units.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_filter1d, median_filter, uniform_filter1d

MAX_STEP = 6  # rows a surface may move between neighbouring columns (a 45-70 degree wall)
STEP_COST = 0.03  # per row moved, against edge costs of order 1
ABOVE_COST = 6.0  # ILM: per working-grid height of tissue-bright signal above the path
ABOVE_LEVEL = 0.15  # ... tissue-bright: this fraction of the way from background to tissue
RPE_MAX_STEP = 3  # Bruch's membrane is smoother than the ILM (no pit), even on a dome's wall
RPE_STEP_COST = 0.2
RPE_TEMPLATE_PASSES = 1  # re-traces by the outer retina's band pattern (`_template_match`)
RPE_TEMPLATE_HALF = 8  # rows either side of the RPE in that pattern
RPE_SMOOTH = 21.0  # columns (Gaussian sigma) of the ripple smoothing
RPE_KEEP = 0.03  # ... departures above this fraction of the retina are kept
RPE_MEDIAN = 41  # columns: a short excursion of the RPE path to another band is a trace error ...
# ... unless the ILM departs from its own median the same way (`median_with_ilm`)


def min_cost_path(cost: np.ndarray, max_step: int = MAX_STEP, step_cost: float = STEP_COST) -> np.ndarray:
    """Row per column of the path through `cost` (H, W) with the least total cost.

    Total = sum of `cost[row, col]` + `step_cost` * |row change| per column; rows may change
    by at most `max_step` between neighbouring columns. Infinite cost rows are never used
    (unless a column has no finite row, where the path keeps its last row's neighbourhood).
    """
    H, W = cost.shape
    cost = np.where(np.isfinite(cost), cost, 1e6)
    acc = cost[:, 0].copy()
    back = np.zeros((H, W), dtype=np.int16)
    shifts = np.arange(-max_step, max_step + 1)
    for x in range(1, W):
        best = np.full(H, np.inf)
        arg = np.zeros(H, dtype=np.int16)
        for d in shifts:  # come from row y - d
            prev = np.full(H, np.inf)
            if d >= 0:
                prev[d:] = acc[: H - d]
            else:
                prev[:d] = acc[-d:]
            prev = prev + step_cost * abs(int(d))
            better = prev < best
            best[better] = prev[better]
            arg[better] = d
        acc = best + cost[:, x]
        back[:, x] = arg
    path = np.zeros(W, dtype=int)
    path[-1] = int(np.argmin(acc))
    for x in range(W - 1, 0, -1):
        path[x - 1] = path[x] - back[path[x], x]
    return path


def _subpixel(cost: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Refine each column's row by a parabola through the cost at the row and its neighbours."""
    H, W = cost.shape
    cost = np.where(np.isfinite(cost), cost, 1e3)
    y = np.clip(path, 1, H - 2)
    cols = np.arange(W)
    c0, c1, c2 = cost[y - 1, cols], cost[y, cols], cost[y + 1, cols]
    denom = c0 - 2 * c1 + c2
    off = np.where(np.abs(denom) > 1e-9, 0.5 * (c0 - c2) / np.where(np.abs(denom) > 1e-9, denom, 1), 0.0)
    return y + np.clip(off, -0.5, 0.5)


def _template_match(band: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Per row and column: correlation of the vertical profile there with the image's typical
    profile around `path` (the median over columns). The outer retina's bands (EZ, IZ, RPE)
    are alike in brightness, so a band measure hops between them; their pattern as a whole
    (EZ above, RPE, choroid below) is matched only at the RPE."""
    H, W = band.shape
    w = RPE_TEMPLATE_HALF
    offsets = np.arange(-w, w + 1)
    rows = np.clip(np.round(path).astype(int)[None, :] + offsets[:, None], 0, H - 1)
    template = np.median(np.take_along_axis(band, rows, axis=0), axis=1)
    template = (template - template.mean()) / (np.linalg.norm(template - template.mean()) + 1e-9)
    padded = np.pad(band, ((w, w), (0, 0)), mode="edge")
    windows = np.stack([padded[w + o: w + o + H] for o in offsets])  # (2w+1, H, W)
    windows = windows - windows.mean(axis=0)
    norm = np.sqrt((windows**2).sum(axis=0)) + 1e-9
    return np.tensordot(template, windows, axes=1) / norm


def shared_departure(departure: np.ndarray, ilm_departure: np.ndarray) -> np.ndarray:
    """Per column, the part of the RPE's departure that the ILM's departure, in the same
    direction, accounts for: sign x min(|RPE's|, |ILM's|); zero where they disagree in sign."""
    same = np.sign(departure) == np.sign(ilm_departure)
    return np.where(same, np.sign(departure) * np.minimum(np.abs(departure), np.abs(ilm_departure)), 0.0)


def median_with_ilm(rpe: np.ndarray, ilm: np.ndarray, size: int) -> np.ndarray:
    """The RPE path's `size`-column median, keeping the departures the ILM shares.

    A median removes a short excursion of the RPE path to another band, but it also clips
    any crest or V narrower than its window, such as the notch where a dome's wall meets the
    sloping RPE. Both surfaces bend there, so the retina's thickness does not change, and a
    clipped RPE would show a pit beside the dome that is not there. The ILM's departure from
    its own median tells the two apart: a band excursion moves the RPE alone, anatomy moves
    both. At the fovea the ILM departs alone (downwards), and the RPE's median is kept.
    """
    rpe_median = median_filter(rpe, size, mode="nearest")
    ilm_median = median_filter(ilm, size, mode="nearest")
    return rpe_median + shared_departure(rpe - rpe_median, ilm - ilm_median)


def trace_surfaces(img: np.ndarray) -> dict:
    """ILM and RPE rows (float, sub-pixel) per column of the working-grid image `img` in [0, 1].

    ILM: the vitreous/retina boundary: mean signal just below the row minus just above it,
    plus a penalty for tissue-bright signal anywhere above (the ILM is the *first* such
    edge). RPE: the brightest band between `0.05 H` and `0.5 H` below the ILM, favouring
    its lower edge (choroid below is darker). Also returns each column's ILM edge strength.
    """
    H, W = img.shape
    g = gaussian_filter(img, (1.0, 2.0))
    background, tissue = float(np.percentile(g, 5)), float(np.percentile(g, 98))
    scale = max(tissue - background, 1e-3)
    k = max(2, H // 40)
    c = np.cumsum(np.vstack([np.zeros((1, W)), g]), axis=0)  # c[y] = sum of rows < y
    rows = np.arange(H)
    lo, hi = np.clip(rows - k, 0, H), np.clip(rows + k, 0, H)
    above = (c[rows] - c[lo]) / np.maximum(rows - lo, 1)[:, None]
    below = (c[hi] - c[rows]) / np.maximum(hi - rows, 1)[:, None]
    edge = (below - above) / scale
    heavy = gaussian_filter(img, (2.0, 4.0))
    excess = np.clip((heavy - background) / scale - ABOVE_LEVEL, 0, None)
    tissue_above = np.cumsum(np.vstack([np.zeros((1, W)), excess]), axis=0)[:-1] / H
    ilm_cost = -edge + ABOVE_COST * tissue_above
    ilm_cost[: 1] = np.inf
    ilm_cost[H - 3:] = np.inf
    ilm = _subpixel(ilm_cost, min_cost_path(ilm_cost))
    ilm_edge = edge[np.clip(np.round(ilm).astype(int), 0, H - 1), np.arange(W)]

    band = gaussian_filter(img, (1.0, 3.0))
    drop = np.zeros_like(band)
    drop[:-k] = band[:-k] - band[k:]  # bright here, darker k rows below: the RPE's lower side
    rpe_cost = -(band - background) / scale - 0.5 * drop / scale
    offset = rows[:, None] - ilm[None, :]
    rpe_cost = np.where((offset >= 0.05 * H) & (offset <= 0.5 * H), rpe_cost, np.inf)
    allowed = (offset >= 0.05 * H) & (offset <= 0.5 * H)
    rpe = _subpixel(rpe_cost, min_cost_path(rpe_cost, RPE_MAX_STEP, RPE_STEP_COST))
    for _ in range(RPE_TEMPLATE_PASSES):
        rpe_cost = np.where(allowed, -_template_match(band, rpe), np.inf)
        rpe = _subpixel(rpe_cost, min_cost_path(rpe_cost, RPE_MAX_STEP, RPE_STEP_COST))
    if RPE_MEDIAN > 1:
        rpe = median_with_ilm(rpe, ilm, RPE_MEDIAN)
    if RPE_SMOOTH > 0:
        # Bruch's membrane is smooth; the traced band ripples by ~1% of the retina over the
        # choroid's vessels. Smooth that ripple away, but keep what departs from the smooth
        # curve by more (a dome's wall, a detachment's edge).
        smooth = gaussian_filter1d(rpe, RPE_SMOOTH, mode="nearest")
        keep = np.clip(np.abs(rpe - smooth) / (RPE_KEEP * max(float(np.median(rpe - ilm)), 1.0)) - 1, 0, 1)
        rpe = smooth * (1 - keep) + rpe * keep
    return {"ilm": ilm, "rpe": rpe, "ilm_edge": ilm_edge, "background": background, "tissue": tissue, "smoothed": g}


def column_match(img: np.ndarray, max_shift: int = MAX_STEP, k: int = 3) -> np.ndarray:
    """Across each column boundary: the best correlation of the mean profiles on either side.

    Anatomy changes smoothly across a B-scan: the `k` columns left of a boundary and the
    `k` right of it show the same profile moved by a few rows (even on a dome's wall). A
    cut (strips shifted or flipped, tiles shuffled) gives boundaries that match at no
    shift. Only vertical smoothing: lateral smoothing would blur a cut away.
    """
    g = gaussian_filter(img, (1.5, 0))
    m = uniform_filter1d(g, k, axis=1)
    H, W = g.shape
    a, b = m[:, : W - k], m[:, k:]
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    best = np.full(W - k, -1.0)
    for d in range(-max_shift, max_shift + 1):
        u = a[max(0, d): H + min(0, d)]
        v = b[max(0, -d): H + min(0, -d)]
        r = (u * v).sum(0) / (np.sqrt((u * u).sum(0) * (v * v).sum(0)) + 1e-9)
        best = np.maximum(best, r)
    return best
