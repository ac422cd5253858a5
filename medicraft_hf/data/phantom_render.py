"""Drawing one phantom B-scan: `render_bscan`, a short driver over named stages.

Geometry first (`phantom_geometry`: scan line, foveal pit, retinal layers, lesion,
surfaces), then pixels (this module: layer bands, choroid and lesion mass, subretinal
material, retinal vessels, the scrambling defect, speckle and log compression), then
the ground truth. The stages draw from one `Generator` in that order; moving a draw
from one stage to another changes every pixel that follows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

from medicraft_hf.data.phantom_anatomy import LAYERS_BOTTOM_UP, PhantomPatient
from medicraft_hf.data.phantom_draw import choroid_texture, scramble_layers, speckle, stamp
from medicraft_hf.data.phantom_geometry import (
    SCAN_WIDTH_MM,
    LesionProfile,
    ScanLine,
    foveal_pit,
    ground_truth,
    layer_surfaces,
    lesion_profile,
    retinal_layers,
    scan_line,
)
from medicraft_hf.schema import DEFAULT_SIZE

DEFECTS: tuple[str, ...] = ("double_fovea", "flat_fovea", "no_fovea", "heavy_noise", "scrambled_layers")

_VITREOUS = -1.0  # no tissue: only the noise floor shows
_TOP_DOWN = [name for name, _ in LAYERS_BOTTOM_UP[::-1]]  # row order of `tops`: rnfl (ILM) first


def render_bscan(
    patient: PhantomPatient,
    plane_deg: float = 0.0,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int | Sequence[int] | np.random.Generator = 0,
    defect: str | None = None,
) -> tuple[np.ndarray, dict]:
    """Draw one radial B-scan of `patient` at `plane_deg`.

    Returns ``(image, ground_truth)``: a uint8 array of shape `size` (H, W) and a
    JSON-serialisable dict (fovea, surfaces, lesion extent, defect). `seed` (an int, a
    sequence of ints or a Generator) drives the speckle and other per-image randomness.
    """
    if defect is not None and defect not in DEFECTS:
        raise ValueError(f"Unknown phantom defect {defect!r}; choose one of {list(DEFECTS)} or None.")
    H, W = int(size[0]), int(size[1])
    if H < 32 or W < 32:
        raise ValueError(f"Phantom size {H}x{W} is too small; use at least 32x32 (HxW).")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    # Geometry, then pixels, then the ground truth; this is also the order of the draws from `rng`.
    scan = scan_line(patient, plane_deg, H, W, rng)
    fovea = foveal_pit(patient, scan, defect, rng)
    th = retinal_layers(patient, scan, fovea, rng)
    lesion = lesion_profile(patient, scan, th)
    bm, tops = layer_surfaces(patient, scan, th, lesion)
    img, below_bm = _draw_layers(patient, scan, tops, bm, lesion)
    img = _draw_choroid(img, below_bm, patient, scan, bm, lesion, rng)
    _draw_subretinal_material(img, patient, scan, th, tops, rng)
    _draw_retinal_vessels(img, patient, scan, th, tops[0])
    if defect == "scrambled_layers":
        img = scramble_layers(img, rng)
    image = _to_display(img, patient, scan, defect, rng)
    return image, ground_truth(patient, scan, defect, th, bm, tops[0], fovea, lesion)


def _draw_layers(patient: PhantomPatient, scan: ScanLine, tops: np.ndarray, bm: np.ndarray,
                 lesion: LesionProfile) -> tuple[np.ndarray, np.ndarray]:
    """The retina as anti-aliased bands; returns the image and each pixel's share below Bruch's membrane."""
    refl = np.array([v for _, v in LAYERS_BOTTOM_UP[::-1]], dtype=np.float32)
    refl = np.repeat(refl[:, None], scan.W, axis=1)
    if patient.label == "melanoma" and lesion.info is not None:
        over = np.clip(lesion.elevation / (0.5 * patient.lesion_height_um), 0, 1)
        refl[_TOP_DOWN.index("ez")] -= 0.45 * over  # loss of the ellipsoid zone over the dome
        refl[_TOP_DOWN.index("elm")] -= 0.2 * over
        refl[_TOP_DOWN.index("iz")] -= 0.25 * over
    # Occupancy of each pixel row by each layer.
    y = np.arange(scan.H, dtype=np.float32)[:, None, None] + 0.5
    cover = np.clip(y - tops.T[None].astype(np.float32) + 0.5, 0.0, 1.0)  # (H, W, K): below each top
    below_bm = np.clip(y[:, :, 0] - bm[None].astype(np.float32) + 0.5, 0.0, 1.0)  # (H, W)
    occ = cover - np.concatenate([cover[:, :, 1:], below_bm[:, :, None]], axis=2)
    img = np.einsum("hwk,kw->hw", occ, refl) + _VITREOUS * (1 - cover[:, :, 0])
    return img, below_bm


def _draw_choroid(img: np.ndarray, below_bm: np.ndarray, patient: PhantomPatient, scan: ScanLine, bm: np.ndarray,
                  lesion: LesionProfile, rng: np.random.Generator) -> np.ndarray:
    """Choroid, sclera and lesion mass below Bruch's membrane, flattened to the original BM."""
    H, um_y = scan.H, scan.um_y
    depth_px = int(np.ceil(H - bm.min())) + 2  # deepest row of the frame below the membrane
    tex = choroid_texture(rng, depth_px, scan.W, (um_y, scan.mm_x * 1000))
    d_um = (np.arange(H)[:, None] + 0.5 - bm[None]) * um_y  # depth below the (raised) BM
    d_idx = np.clip(np.round(d_um / um_y).astype(int), 0, depth_px - 1)
    below = np.take_along_axis(tex, d_idx, axis=0)
    # Sclera below the choroid; everything fades with depth (signal roll-off).
    below = np.where(d_um > patient.choroid_um + 0.3 * lesion.mass_depth[None], 0.36, below)
    below = below * np.exp(-np.maximum(d_um, 0) / 260.0)
    if lesion.info is not None:
        below = _lesion_mass(below, d_um, patient, lesion, rng)
    return img * (1 - below_bm) + below * below_bm


def _lesion_mass(below: np.ndarray, d_um: np.ndarray, patient: PhantomPatient, lesion: LesionProfile,
                 rng: np.random.Generator) -> np.ndarray:
    """The lesion's mass over the choroid, and the optical shadow it casts."""
    H, W = below.shape
    elevation, mass_depth = lesion.elevation, lesion.mass_depth
    # Soft posterior border (~25 um), fading into the choroid rather than cut out of it.
    in_mass = np.clip(((elevation + mass_depth)[None] - d_um) / 25.0, 0, 1) * (d_um > 0)
    if patient.label == "melanoma":
        # Dense, highly reflective top with shadowing: signal dies within ~150 um.
        mass = 0.8 * np.exp(-np.maximum(d_um, 0) / 110.0) + 0.04 * gaussian_filter(rng.standard_normal((H, W)), 1.5)
        shadow = np.exp(-np.maximum(d_um - (elevation)[None] * 0.4, 0) / 90.0)
        shade = np.clip(mass_depth / max(patient.lesion_depth_um, 1) * 1.6, 0, 1)[None]
        return in_mass * mass + (1 - in_mass) * below * (1 - shade * (1 - shadow))
    mass = 0.76 * np.exp(-np.maximum(d_um, 0) / 280.0) + 0.02 * gaussian_filter(rng.standard_normal((H, W)), 1)
    shade = np.clip(mass_depth / max(patient.lesion_depth_um, 1), 0, 1)[None] * (d_um > 0)
    return in_mass * mass + (1 - in_mass) * below * (1 - 0.35 * shade)  # mild shadowing


def _draw_subretinal_material(img: np.ndarray, patient: PhantomPatient, scan: ScanLine, th: dict, tops: np.ndarray,
                              rng: np.random.Generator) -> None:
    """In place: shaggy photoreceptor debris at the fluid roof, lipofuscin dots."""
    if th["fluid"].max() <= 5:
        return
    fluid_top = tops[_TOP_DOWN.index("fluid")]
    fluid_bot = fluid_top + th["fluid"] / scan.um_y
    n_dots = int(rng.integers(6, 16)) if patient.label == "melanoma" else int(rng.integers(2, 7))
    cols = np.flatnonzero(th["fluid"] > 0.5 * th["fluid"].max())
    ry = max(1.0, 12 / scan.um_y)
    rx = max(1.0, 20 / (scan.mm_x * 1000))
    for c in rng.choice(cols, size=min(n_dots, len(cols)), replace=False):
        yc = fluid_top[c] + rng.uniform(0.0, 0.35) * (fluid_bot[c] - fluid_top[c])
        stamp(img, yc, c, ry, rx, 0.7)


def _draw_retinal_vessels(img: np.ndarray, patient: PhantomPatient, scan: ScanLine, th: dict, ilm: np.ndarray) -> None:
    """In place: retinal vessels in the inner retina, and the vertical shadows they cast."""
    H, W, mm_x = scan.H, scan.W, scan.mm_x
    for ang, ecc_v in patient.retinal_vessels:
        # A vessel is a straight segment of the fundus, `ecc_v` mm from the fovea with its
        # normal at `ang`; the radial plane meets it at s = ecc_v / cos(ang - plane).
        cos = np.cos(np.radians(ang - scan.plane_deg))
        if abs(cos) < 1e-3:
            continue
        c = int(round((ecc_v / cos + SCAN_WIDTH_MM / 2 - scan.jitter) / mm_x))
        if not 0 <= c < W:
            continue
        half = max(0.5, 0.045 / mm_x)
        cols = np.abs(np.arange(W) - c) <= half
        yv = ilm[c] + (th["rnfl"][c] + 0.6 * th["gcl"][c]) / scan.um_y
        img[:, cols] = np.where(np.arange(H)[:, None] > yv, img[:, cols] * 0.6, img[:, cols])
        rv = max(0.8, 30 / scan.um_y)
        stamp(img, yv - rv, c, rv, max(half, 0.8), 0.8)


def _to_display(img: np.ndarray, patient: PhantomPatient, scan: ScanLine, defect: str | None,
                rng: np.random.Generator) -> np.ndarray:
    """Speckle and log compression: display = log(signal * speckle + floor * speckle') / D, as uint8."""
    H, W = scan.H, scan.W
    D = 6.0
    grain = (max(0.35, 0.6 * H / 256), max(0.5, 1.5 * W / 512))  # grains elongated laterally
    looks = max(1.0, (256 * 512) / (H * W) / 3.0)  # smaller frames average more speckle
    sigma = 0.8 * patient.noise / np.sqrt(looks) * (3.0 if defect == "heavy_noise" else 1.0)
    lin = np.exp(D * img * patient.contrast + speckle(rng, (H, W), grain, sigma))
    lin = lin + np.exp(D * 0.08 + speckle(rng, (H, W), grain, 0.5 * sigma))  # noise floor
    out = np.log(lin) / D
    out = (out - 0.08) / 0.95 * patient.brightness
    if defect == "heavy_noise":
        out = out + rng.normal(0, 0.25, (H, W)) + gaussian_filter(rng.standard_normal((H, W)), 6)  # grain + blotches
    return np.clip(out * 255, 0, 255).astype(np.uint8)
