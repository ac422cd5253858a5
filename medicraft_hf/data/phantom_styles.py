"""Validation B-scans in many device styles, independent of the training phantom.

The anatomy check must hold on scans it was not tuned on, so this module draws its own
B-scans with its own code (it shares nothing with `phantom_render`, whose pixels the demo
model learned from): a retina of 12 bands over a choroid with dark vessel lumens, whose
geometry (pit depth and width over the published range and beyond, tilt, curvature,
vertical position, domes, subretinal fluid, vessel shadows) is drawn per scan, and whose
appearance (band reflectivities and contrast, dynamic range, speckle strength and grain,
signal roll-off, vignetting, brightness) comes from a named `DeviceStyle`.

Every scan is drawn for one verdict of the anatomy check (`docs/anatomy_check.md`) and
the geometry is constructed to meet that verdict's definition with a guard band:

* ``ok``: one pit, depth 0.14-0.45 of the rim thickness (normal eyes: ~0.21-0.36);
* ``hypoplastic_fovea``: one shallow pit, depth 0.04-0.075, inner layers continuous over
  it (Thomas grade 1);
* ``no_fovea``: depth at most 0.01 (Thomas grades 2-4: no pit; an ONL widening may remain);
* ``doubled_fovea``: two pits, each 0.14-0.40 deep, 1.3-3.0 mm apart, the retina between
  them rising back by at least half the shallower pit's depth;
* ``corrupted``: heavy noise, shifted and flipped strips, or shuffled blocks.

`STYLES` names the device styles; `TUNING_STYLES` are the ones thresholds may be chosen
on, `HELDOUT_STYLES` the ones no threshold was chosen on. `render_style_bscan` draws one
scan, `validation_set` yields a reproducible set. Deterministic: same arguments, same pixels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

SCAN_MM = 6.0  # lateral extent of every scan (the medicraft radial protocol)
VERDICTS = ("ok", "doubled_fovea", "no_fovea", "hypoplastic_fovea", "corrupted")
CORRUPTIONS = ("heavy_noise", "strips", "blocks")

# Bands top-down: inner retina (vanishes in a pit), then outer retina, as fractions.
_INNER = (("rnfl", 0.16), ("gcl", 0.27), ("ipl", 0.21), ("inl", 0.20), ("opl", 0.16))
_OUTER = (("onl", 0.46), ("elm", 0.03), ("myoid", 0.12), ("ez", 0.08), ("os", 0.11), ("iz", 0.06), ("rpe", 0.14))


@dataclass(frozen=True)
class DeviceStyle:
    """How a device (and its settings) shows the same anatomy."""

    name: str
    refl: dict  # band -> reflectivity in [0, 1] (vitreous 0)
    choroid: float = 0.55  # stroma reflectivity
    vessel_size_um: float = 60.0  # typical choroidal lumen radius
    rolloff_um: float = 300.0  # signal fades with depth below the RPE
    dynamic_range: float = 5.0  # log compression: display = log(signal) / range
    noise: float = 0.8  # speckle strength (log units)
    grain_um: tuple[float, float] = (6.0, 14.0)  # speckle grain, axial / lateral
    floor: float = 0.06  # noise floor in the vitreous
    gamma: float = 1.0
    vignette: float = 0.0  # darkening at the left and right edges (fraction)
    blur_um: float = 0.0  # extra axial blur (lower axial resolution)


def _refl(rnfl, gcl, ipl, inl, opl, onl, elm, myoid, ez, os, iz, rpe, fluid=0.02) -> dict:
    return dict(rnfl=rnfl, gcl=gcl, ipl=ipl, inl=inl, opl=opl, onl=onl, elm=elm, myoid=myoid, ez=ez, os=os, iz=iz,
                rpe=rpe, fluid=fluid)


STYLES: dict[str, DeviceStyle] = {s.name: s for s in (
    # Tuning styles.
    DeviceStyle("mid_contrast", _refl(0.75, 0.40, 0.55, 0.32, 0.60, 0.22, 0.50, 0.30, 0.85, 0.40, 0.65, 0.95)),
    DeviceStyle("grainy", _refl(0.70, 0.42, 0.52, 0.35, 0.55, 0.25, 0.45, 0.32, 0.80, 0.45, 0.60, 0.90),
                noise=1.3, grain_um=(10.0, 24.0), floor=0.10),
    DeviceStyle("dim_vignetted", _refl(0.60, 0.35, 0.45, 0.30, 0.50, 0.20, 0.40, 0.28, 0.70, 0.38, 0.55, 0.85),
                dynamic_range=6.0, vignette=0.45, gamma=1.3, rolloff_um=200.0),
    DeviceStyle("smooth_averaged", _refl(0.80, 0.38, 0.58, 0.30, 0.62, 0.18, 0.55, 0.25, 0.88, 0.35, 0.70, 0.97),
                noise=0.35, grain_um=(4.0, 8.0), choroid=0.6),
    # Held-out styles: no threshold was chosen on these.
    DeviceStyle("spectralis_like", _refl(0.95, 0.30, 0.60, 0.22, 0.70, 0.10, 0.60, 0.20, 0.95, 0.30, 0.80, 1.00),
                dynamic_range=4.0, noise=0.5, grain_um=(4.0, 10.0), vessel_size_um=110.0, choroid=0.62, floor=0.03),
    DeviceStyle("cirrus_like", _refl(0.65, 0.45, 0.50, 0.40, 0.55, 0.30, 0.45, 0.40, 0.75, 0.65, 0.70, 0.80),
                noise=1.0, grain_um=(8.0, 18.0), blur_um=12.0, choroid=0.5, rolloff_um=220.0),
    DeviceStyle("handheld_noisy", _refl(0.70, 0.45, 0.55, 0.38, 0.58, 0.28, 0.48, 0.35, 0.78, 0.45, 0.62, 0.88),
                noise=1.6, grain_um=(12.0, 30.0), floor=0.14, vignette=0.6, gamma=0.8),
    DeviceStyle("swept_source", _refl(0.72, 0.36, 0.50, 0.30, 0.56, 0.20, 0.42, 0.30, 0.80, 0.42, 0.64, 0.90),
                rolloff_um=700.0, choroid=0.7, vessel_size_um=90.0, dynamic_range=5.5, noise=0.7),
    DeviceStyle("low_signal", _refl(0.45, 0.28, 0.36, 0.25, 0.40, 0.17, 0.33, 0.24, 0.55, 0.30, 0.45, 0.70),
                dynamic_range=7.0, noise=1.1, floor=0.12, gamma=1.6, vignette=0.3),
    # Second held-out group (issue 16, session 6): defined before any change of that session
    # and measured once, at its end.
    DeviceStyle("topcon_like", _refl(0.68, 0.48, 0.56, 0.42, 0.62, 0.34, 0.50, 0.42, 0.74, 0.55, 0.66, 0.82),
                noise=0.9, grain_um=(7.0, 26.0), choroid=0.48, rolloff_um=350.0, dynamic_range=4.5),
    DeviceStyle("enhanced_depth", _refl(0.78, 0.34, 0.54, 0.28, 0.60, 0.16, 0.50, 0.26, 0.86, 0.36, 0.70, 0.92),
                choroid=0.78, vessel_size_um=140.0, rolloff_um=900.0, dynamic_range=4.5, noise=0.6),
    DeviceStyle("time_domain", _refl(0.70, 0.40, 0.50, 0.36, 0.55, 0.26, 0.45, 0.34, 0.72, 0.45, 0.62, 0.85),
                blur_um=22.0, noise=0.6, grain_um=(15.0, 30.0), dynamic_range=3.5, gamma=1.2, floor=0.08),
    DeviceStyle("saturated", _refl(0.90, 0.60, 0.72, 0.55, 0.78, 0.40, 0.68, 0.52, 0.95, 0.62, 0.85, 1.00),
                dynamic_range=3.0, gamma=0.6, floor=0.08, vignette=0.2, noise=0.8, choroid=0.66),
    # Third held-out group (session 6, second half): defined after the first half's changes,
    # before the second half's, and measured once at the session's end.
    DeviceStyle("bioptigen_like", _refl(0.62, 0.38, 0.48, 0.33, 0.52, 0.24, 0.42, 0.30, 0.70, 0.40, 0.58, 0.86),
                noise=1.2, grain_um=(9.0, 20.0), blur_um=8.0, floor=0.11, vignette=0.35, rolloff_um=260.0),
    DeviceStyle("merged_outer", _refl(0.74, 0.36, 0.52, 0.30, 0.58, 0.20, 0.80, 0.75, 0.92, 0.85, 0.90, 0.94),
                noise=0.7, blur_um=10.0, choroid=0.52, vessel_size_um=70.0),
    DeviceStyle("fast_rolloff", _refl(0.76, 0.40, 0.55, 0.33, 0.60, 0.22, 0.48, 0.30, 0.84, 0.42, 0.66, 0.93),
                rolloff_um=110.0, noise=0.9, choroid=0.6, dynamic_range=5.0),
    DeviceStyle("wide_dynamic", _refl(0.70, 0.42, 0.54, 0.36, 0.58, 0.26, 0.46, 0.34, 0.80, 0.44, 0.64, 0.90),
                dynamic_range=8.0, noise=1.0, gamma=1.1, floor=0.05, grain_um=(5.0, 12.0)),
    # Fourth held-out group (session 8): defined and committed before that session's changes,
    # measured once at its end, also at 496x1024 (a Spectralis-sized B-scan).
    DeviceStyle("high_definition", _refl(0.90, 0.32, 0.58, 0.24, 0.66, 0.12, 0.55, 0.22, 0.92, 0.32, 0.75, 0.98),
                noise=0.4, grain_um=(3.0, 7.0), dynamic_range=4.2, floor=0.03, choroid=0.58, vessel_size_um=100.0),
    DeviceStyle("early_sd_oct", _refl(0.62, 0.44, 0.50, 0.40, 0.54, 0.32, 0.44, 0.38, 0.70, 0.48, 0.60, 0.80),
                blur_um=16.0, noise=1.1, grain_um=(10.0, 22.0), rolloff_um=180.0, vignette=0.25, gamma=1.4),
    DeviceStyle("hazy_vitreous", _refl(0.72, 0.42, 0.54, 0.36, 0.58, 0.26, 0.46, 0.34, 0.80, 0.44, 0.64, 0.90),
                floor=0.18, gamma=0.9, noise=1.0, dynamic_range=4.0),
    DeviceStyle("thick_choroid", _refl(0.74, 0.38, 0.54, 0.30, 0.60, 0.20, 0.48, 0.30, 0.90, 0.40, 0.66, 0.86),
                choroid=0.75, vessel_size_um=160.0, rolloff_um=600.0, noise=0.8, grain_um=(6.0, 16.0)),
)}
TUNING_STYLES: tuple[str, ...] = ("mid_contrast", "grainy", "dim_vignetted", "smooth_averaged")
HELDOUT_STYLES: tuple[str, ...] = ("spectralis_like", "cirrus_like", "handheld_noisy", "swept_source", "low_signal")
# Measured once at the end of the session that changed the check last (see anatomy_validation.md).
FRESH_HELDOUT_STYLES: tuple[str, ...] = ("topcon_like", "enhanced_depth", "time_domain", "saturated")
THIRD_HELDOUT_STYLES: tuple[str, ...] = ("bioptigen_like", "merged_outer", "fast_rolloff", "wide_dynamic")
FOURTH_HELDOUT_STYLES: tuple[str, ...] = ("high_definition", "early_sd_oct", "hazy_vitreous", "thick_choroid")


def random_style(seed: int | Sequence[int]) -> DeviceStyle:
    """A device style drawn over wide ranges (band contrasts, choroid, noise, grain, gamma,
    vignetting, blur): the tuning set's breadth, beyond the four named tuning styles."""
    rng = np.random.default_rng(seed)
    inner = rng.uniform(0.25, 0.55)  # nuclear layers' level
    span = rng.uniform(0.15, 0.45)  # how much brighter the plexiform layers and the EZ/RPE are
    refl = _refl(rnfl=inner + span * rng.uniform(0.8, 1.4), gcl=inner + 0.1 * span, ipl=inner + 0.6 * span,
                 inl=inner, opl=inner + 0.7 * span, onl=inner * rng.uniform(0.4, 0.8), elm=inner + 0.5 * span,
                 myoid=inner * rng.uniform(0.6, 1.0), ez=inner + span * rng.uniform(1.0, 1.4), os=inner + 0.3 * span,
                 iz=inner + 0.8 * span, rpe=min(1.0, inner + span * rng.uniform(1.1, 1.6)))
    return DeviceStyle(
        f"random_{'_'.join(map(str, np.atleast_1d(seed)))}", refl, choroid=rng.uniform(0.35, 0.8),
        vessel_size_um=rng.uniform(40, 150), rolloff_um=rng.uniform(150, 900), dynamic_range=rng.uniform(3.0, 7.5),
        noise=rng.uniform(0.3, 1.7), grain_um=(rng.uniform(3, 15), rng.uniform(6, 32)), floor=rng.uniform(0.02, 0.15),
        gamma=float(np.exp(rng.uniform(np.log(0.6), np.log(1.7)))), vignette=rng.choice([0.0, rng.uniform(0.1, 0.6)]),
        blur_um=rng.choice([0.0, rng.uniform(4, 24)]))


def _pit(s: np.ndarray, centre: float, sigma: float, power: float) -> np.ndarray:
    return np.exp(-(np.abs(s - centre) / sigma) ** power)


def _geometry(verdict: str, rng: np.random.Generator) -> dict:
    """Pits (centre mm, depth, sigma mm, wall power) and the scan's anatomy, per the verdict."""
    fix = rng.normal(0, 0.12)  # fixation: the fovea is near, not at, the centre
    if verdict == "ok":
        pits = [(fix, rng.uniform(0.14, 0.45), rng.uniform(0.35, 0.85), rng.uniform(1.6, 3.0))]
    elif verdict == "hypoplastic_fovea":
        pits = [(fix, rng.uniform(0.04, 0.075), rng.uniform(0.45, 0.9), rng.uniform(1.6, 2.4))]
    elif verdict == "no_fovea":
        pits = [(fix, rng.uniform(0.0, 0.01), rng.uniform(0.4, 0.9), 2.0)]
    elif verdict == "doubled_fovea":
        sigma = rng.uniform(0.3, 0.55)
        sep = rng.uniform(max(1.3, 2.8 * sigma), 3.0)
        mid = rng.uniform(-0.3, 0.3)
        pits = [(mid - sep / 2, rng.uniform(0.14, 0.40), sigma, rng.uniform(1.8, 2.6)),
                (mid + sep / 2, rng.uniform(0.14, 0.40), sigma * rng.uniform(0.85, 1.15), rng.uniform(1.8, 2.6))]
    else:  # corrupted: a normal retina underneath
        pits = [(fix, rng.uniform(0.14, 0.4), rng.uniform(0.4, 0.8), 2.0)]
    g = {
        "pits": pits,
        "rim_um": rng.uniform(285, 370),
        "frame_um": rng.uniform(1000, 2000),
        "vpos": rng.uniform(0.35, 0.8),  # Bruch's membrane at the fovea, fraction of the height
        "tilt": rng.normal(0, 0.035),  # frame fractions per mm
        "curv": rng.uniform(-0.004, 0.02),  # frame fractions per mm^2
        "onl_widen_um": rng.uniform(15, 45) if verdict != "no_fovea" or rng.random() < 0.5 else 0.0,
        "choroid_um": rng.uniform(150, 420),
        "vessels": [(rng.uniform(-2.8, 2.8), rng.uniform(0.04, 0.09)) for _ in range(int(rng.integers(0, 5)))],
        "dome": None,
        "fluid": None,
    }
    # Lesions away from the fovea: a steep dome (melanoma-like) or a drusenoid bump, fluid.
    far = lambda: float(rng.choice([-1, 1]) * rng.uniform(1.9, 3.2))  # noqa: E731
    if rng.random() < 0.35:
        g["dome"] = (far(), rng.uniform(0.7, 1.6), rng.uniform(80, 500), rng.uniform(0.6, 1.6))
    if rng.random() < 0.3:
        g["fluid"] = (far(), rng.uniform(0.4, 1.0), rng.uniform(40, 200))
    return g


def _bump(s: np.ndarray, centre: float, radius: float, power: float) -> np.ndarray:
    u = np.clip(np.abs(s - centre) / radius, 0, 1)
    return (1 - u**2) ** power


def _anatomy(g: dict, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Total thickness, inner thickness, fluid height and dome elevation (um) along the scan."""
    periph = np.clip((np.abs(s) - 1.6) / 1.4, 0, 1)
    rim = g["rim_um"] * (1 - 0.12 * periph)
    thin = np.ones_like(s)
    shape = np.zeros_like(s)
    for c, depth, sigma, power in g["pits"]:
        p = _pit(s, c, sigma, power)
        thin *= 1 - depth * p
        shape = np.maximum(shape, p)
    total = rim * thin
    outer = 150 + g["onl_widen_um"] * shape  # ONL widening under each (even an absent) pit
    outer = np.minimum(outer, total - 8.0)  # the inner retina never drops below ~8 um here
    inner = total - outer
    fluid = np.zeros_like(s)
    if g["fluid"] is not None:
        c, r, h = g["fluid"]
        fluid = h * _bump(s, c, r, 1.2)
    elevation = np.zeros_like(s)
    if g["dome"] is not None:
        c, r, h, p = g["dome"]
        elevation = h * _bump(s, c, r, p)
    return total, inner, fluid, elevation


def true_depths(g: dict, W: int = 512) -> list[float]:
    """Each pit's depth as the check defines it: (rim - centre) / rim, rim = lower side maximum within 1.5 mm."""
    s = (np.arange(W) + 0.5) / W * SCAN_MM - SCAN_MM / 2
    total = _anatomy(g, s)[0]
    out = []
    for c, *_ in g["pits"]:
        i = int(np.argmin(np.abs(s - c)))
        j = i + int(np.argmin(total[max(0, i - 10): i + 11])) - min(i, 10)
        reach = int(1.5 / SCAN_MM * W)
        rim = min(total[max(0, j - reach): j + 1].max(), total[j: j + reach + 1].max())
        out.append(float((rim - total[j]) / rim))
    return out


def render_style_bscan(style: str | DeviceStyle, verdict: str, size: tuple[int, int] = (256, 512),
                       seed: int | Sequence[int] | np.random.Generator = 0) -> tuple[np.ndarray, dict]:
    """One uint8 B-scan of shape `size` drawn for `verdict` in `style`, and its ground truth."""
    st = STYLES[style] if isinstance(style, str) else style
    if verdict not in VERDICTS:
        raise ValueError(f"Unknown verdict {verdict!r}; choose one of {list(VERDICTS)}.")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    H, W = int(size[0]), int(size[1])
    g = _geometry(verdict, rng)
    um_y, um_x = g["frame_um"] / H, SCAN_MM * 1000 / W
    s = (np.arange(W) + 0.5) * um_x / 1000 - SCAN_MM / 2
    total, inner, fluid, elevation = _anatomy(g, s)
    # Keep the whole retina (and a dome) in the frame, like an operator would.
    bm = H * (g["vpos"] + g["tilt"] * s + g["curv"] * s**2) - elevation / um_y
    top = bm - (total + fluid) / um_y
    bm = bm + max(0.0, 0.06 * H - top.min()) - max(0.0, bm.max() - 0.93 * H)
    # Band edges top-down, in pixels.
    names = [n for n, _ in _INNER] + [n for n, _ in _OUTER[:-1]] + ["fluid", "rpe"]
    thick = [inner * f for _, f in _INNER] + [(total - inner) * f for _, f in _OUTER[:-1]]
    thick += [fluid, (total - inner) * _OUTER[-1][1]]
    edges = [bm - (sum(thick) / um_y)]
    for t in thick:
        edges.append(edges[-1] + t / um_y)
    y = np.arange(H, dtype=np.float32)[:, None] + 0.5
    cover = [np.clip(y - e[None].astype(np.float32) + 0.5, 0, 1) for e in edges]
    img = np.zeros((H, W), np.float32)
    for k, name in enumerate(names):
        img += (cover[k] - cover[k + 1]) * st.refl[name]
    # Choroid with dark vessel lumens, then sclera; everything below the RPE fades with depth.
    below = cover[-1]
    d_um = (y - edges[-1][None]) * um_y
    chor = st.choroid + 0.05 * gaussian_filter(rng.standard_normal((H, W)), (1.0, 2.0))
    n_vessels = int(rng.integers(10, 24))
    yy, xx = np.mgrid[0:H, 0:W]
    for _ in range(n_vessels):
        cd = rng.uniform(0.15, 0.85) * g["choroid_um"]
        r = st.vessel_size_um * rng.uniform(0.5, 1.4) * (0.5 + cd / g["choroid_um"])
        cx = rng.uniform(0, W)
        cy = np.interp(cx, np.arange(W), edges[-1]) + cd / um_y
        inside = ((yy - cy) * um_y / r) ** 2 + ((xx - cx) * um_x / (2.2 * r)) ** 2
        chor = np.where(inside < 1, 0.18, chor)
    chor = np.where(d_um > g["choroid_um"], 0.4, chor) * np.exp(-np.maximum(d_um, 0) / st.rolloff_um)
    img = img * (1 - below) + chor * below
    for c, w in g["vessels"]:  # retinal vessels shadow everything below them
        cols = np.abs(s - c) < w / 2
        img[:, cols] = np.where(y > edges[1][None, cols], img[:, cols] * 0.55, img[:, cols])
    if st.blur_um:
        img = gaussian_filter(img, (st.blur_um / um_y, 0))
    # Speckle (multiplicative, grains in um so they scale with the size), log display.
    grain = (max(0.3, st.grain_um[0] / um_y), max(0.3, st.grain_um[1] / um_x))
    looks = 2.0 * max(1.0, np.sqrt((256 * 512) / (H * W)))  # scans are averaged; small frames more so
    kind = CORRUPTIONS[int(rng.integers(len(CORRUPTIONS)))] if verdict == "corrupted" else None
    noise_mult = 4.0 if kind == "heavy_noise" else 1.0
    sp = np.log(gaussian_filter(rng.standard_exponential((H, W)).astype(np.float32), grain) + 1e-3)
    sp = (sp - sp.mean()) / (sp.std() + 1e-9) * st.noise * noise_mult / looks
    lin = np.exp(st.dynamic_range * img + sp) + st.floor * st.dynamic_range * np.exp(0.5 * sp)
    out = np.log(lin) / st.dynamic_range
    out = (out - np.percentile(out, 1)) / (np.percentile(out, 99.7) - np.percentile(out, 1) + 1e-6)
    out = np.clip(out, 0, 1) ** st.gamma
    if st.vignette:
        out = out * (1 - st.vignette * (2 * (np.arange(W) + 0.5) / W - 1)[None] ** 4)
    out = out * rng.uniform(0.75, 1.0)
    if kind is not None:
        out = _corrupt(out, kind, rng)
    image = np.clip(out * 255, 0, 255).astype(np.uint8)
    truth = {"verdict": verdict, "style": st.name, "size": [H, W], "corruption": kind,
             "pit_x": [round((c + SCAN_MM / 2) / SCAN_MM, 4) for c, *_ in g["pits"]] if verdict != "no_fovea" else [],
             "pit_depth": [round(d, 4) for d in true_depths(g)], "dome": g["dome"] is not None,
             "fluid": g["fluid"] is not None,
             "ilm": edges[0], "rpe": edges[-1]}  # true surfaces per column (pixel rows), for diagnosis
    return image, truth


def _corrupt(out: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    H, W = out.shape
    if kind == "heavy_noise":
        return out + rng.normal(0, 0.3, (H, W)) + 0.8 * gaussian_filter(rng.standard_normal((H, W)), max(2, H / 40))
    if kind == "strips":
        res = out.copy()
        edges = np.sort(rng.choice(np.arange(W // 12, W - W // 12), size=int(rng.integers(4, 9)), replace=False))
        for a, b in zip(np.r_[0, edges], np.r_[edges, W]):
            strip = np.roll(out[:, a:b], int(rng.choice([-1, 1]) * rng.integers(H // 6, H // 3)), axis=0)
            res[:, a:b] = strip[::-1] if rng.random() < 0.5 else strip
        return res
    # blocks: the frame cut into tiles and shuffled
    th, tw = H // 4, W // 8
    tiles = [out[i * th:(i + 1) * th, j * tw:(j + 1) * tw] for i in range(4) for j in range(8)]
    order = rng.permutation(len(tiles))
    res = out.copy()
    for k, t in enumerate(order):
        i, j = divmod(k, 8)
        res[i * th:(i + 1) * th, j * tw:(j + 1) * tw] = tiles[t]
    return res


def validation_set(styles: Sequence[str | DeviceStyle], sizes: Sequence[tuple[int, int]], per_verdict: int,
                   seed: int = 0) -> Iterator[tuple[np.ndarray, dict]]:
    """`per_verdict` scans of each verdict per size, styles taken in turn; reproducible."""
    for si, size in enumerate(sizes):
        for vi, verdict in enumerate(VERDICTS):
            for i in range(per_verdict):
                style = styles[i % len(styles)]
                yield render_style_bscan(style, verdict, size, seed=[seed, si, vi, i])


def style_contact_sheet(styles: Sequence[str] = HELDOUT_STYLES, size: tuple[int, int] = (128, 256), seed: int = 0):
    """A labelled PIL image: one row per style, one column per verdict."""
    from PIL import Image, ImageDraw

    H, W = size
    pad, label_h = 4, 12
    sheet = Image.new("L", (len(VERDICTS) * (W + pad) + pad, len(styles) * (H + label_h + pad) + pad), 255)
    draw = ImageDraw.Draw(sheet)
    for r, style in enumerate(styles):
        for c, verdict in enumerate(VERDICTS):
            image, _ = render_style_bscan(style, verdict, size, seed=[seed, r, c])
            x, y = pad + c * (W + pad), pad + r * (H + label_h + pad)
            sheet.paste(Image.fromarray(image), (x, y + label_h))
            draw.text((x + 2, y), f"{style}: {verdict}", fill=0)
    return sheet
