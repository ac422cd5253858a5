"""Procedural OCT phantom: realistic radial macular B-scans with known ground truth.

No real OCT data can be used here, so the phantom is the demo data, the test data and
the benchmark. It follows the anatomy facts of `docs/oct-domain` (shared docs):

* layers from the vitreous down: ILM/RNFL (hyper), GCL (hypo), IPL, INL (hypo), OPL
  (hyper), ONL (thick, darkest), ELM (thin line), EZ (hyper), IZ, RPE (brightest);
  below Bruch's membrane a granular choroid with dark vessel lumens that fades with
  depth, then sclera;
* a foveal pit (~2.2-2.45 mm wide, 70-120 um deep) where the inner layers vanish and
  the ONL thickens;
* multiplicative speckle (Gamma intensity, grains elongated laterally), log-compressed.

Classes: ``healthy``; ``nevus`` (flat, homogeneous, hyper-reflective choroidal mass,
often with overlying drusen); ``nevus_fluid`` (nevus plus a subretinal fluid pocket and
shaggy photoreceptors); ``melanoma`` (dome-shaped choroidal elevation, dense optical
shadowing, subretinal fluid, loss of the EZ, lipofuscin dots).

An exam is 12 radial B-scans through the fovea, one every 30 degrees. A lesion is a disc
on the fundus, so its position along the scan moves with the plane angle, and a plane
may miss a small, eccentric lesion. The exam (and each of its rows) keeps the
patient's label even then, as in a clinic, where the diagnosis belongs to the eye.

Each B-scan comes with ground truth (JSON in the ``ground_truth`` column): fovea x and
pit depth, the ILM and RPE surfaces as polylines, the lesion and fluid extents, and the
defect, if one was asked for. ``render_bscan(..., defect=...)`` draws the failure modes
the medical team saw in generated images (doubled, hypoplastic or absent fovea, noise,
scrambled layers) so that the anatomy check can be validated.

Everything is vectorized numpy and deterministic: the same seed gives the same pixels.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from medicraft_hf.schema import CLASS_NAMES, DEFAULT_SIZE, RADIAL_PLANES_DEG, empty_row

# Lesion kinds the phantom can draw; class names must be among them.
PHANTOM_CLASSES: tuple[str, ...] = ("healthy", "nevus", "nevus_fluid", "melanoma")

# Clinic-like imbalance, so that class balancing matters downstream.
DEFAULT_CLASS_WEIGHTS: dict[str, float] = {"healthy": 0.4, "nevus": 0.3, "nevus_fluid": 0.15, "melanoma": 0.15}

DEFECTS: tuple[str, ...] = ("double_fovea", "flat_fovea", "no_fovea", "heavy_noise", "scrambled_layers")

# Scan geometry: 6 mm lateral scan, ~1.15 mm of depth in the frame (4.5 um/px at 256 px).
SCAN_WIDTH_MM = 6.0
FRAME_DEPTH_UM = 1150.0
SURFACE_POINTS = 65  # ground-truth polylines: this many evenly spaced columns

# Layers above Bruch's membrane, listed bottom-up: (name, display reflectivity in [0, 1]).
# Thicknesses (um) come from `_layer_thicknesses`; "fluid" and "drusen" are zero where absent.
_LAYERS_BOTTOM_UP: tuple[tuple[str, float], ...] = (
    ("drusen", 0.52),
    ("rpe", 0.93),
    ("fluid", 0.03),
    ("iz", 0.66),
    ("os", 0.40),
    ("ez", 0.82),
    ("myoid", 0.30),
    ("elm", 0.50),
    ("onl", 0.20),
    ("opl", 0.58),
    ("inl", 0.30),
    ("ipl", 0.52),
    ("gcl", 0.38),
    ("rnfl", 0.74),
)
_VITREOUS = -1.0  # no tissue: only the noise floor shows


@dataclass
class PhantomPatient:
    """Per-patient (per-eye) anatomy; all the planes of one exam share it."""

    label: str
    eye: str = "OD"
    thickness_scale: float = 1.0  # whole retina
    pit_sigma_mm: float = 0.62  # pit radius scale (diameter ~ 3.6 sigma)
    pit_depth: float = 1.0  # fraction of the inner retina removed at the centre
    onl_peak_um: float = 110.0  # ONL thickening under the fovea
    fovea_offset_mm: tuple[float, float] = (0.0, 0.0)  # fixation error on the fundus
    tilt: tuple[float, float] = (0.0, 0.0)  # frame fractions per mm, fundus x / y
    curvature: float = 0.01  # frame fractions per mm^2 (edges rise)
    depth_fraction: float = 0.60  # Bruch's membrane under the fovea, fraction of height
    brightness: float = 1.0
    contrast: float = 1.0
    noise: float = 1.0  # speckle strength
    choroid_um: float = 290.0
    # Lesion: a disc on the fundus, polar position from the fovea.
    lesion_r_mm: float = 0.0
    lesion_theta_deg: float = 0.0
    lesion_radius_mm: float = 0.0
    lesion_height_um: float = 0.0  # elevation of Bruch's membrane at the lesion centre
    lesion_depth_um: float = 0.0  # mass thickness below the original Bruch's membrane
    fluid_um: float = 0.0  # peak subretinal fluid height
    fluid_radius_mm: float = 0.0
    fluid_r_mm: float = 0.0  # pocket centre, on the lesion's side away from the fovea
    drusen: list[tuple[float, float, float, float]] = field(default_factory=list)  # x_mm, y_mm, radius_mm, height_um
    retinal_vessels: list[tuple[float, float]] = field(default_factory=list)  # angle_deg, eccentricity_mm

    @classmethod
    def sample(cls, label: str, rng: np.random.Generator) -> "PhantomPatient":
        if label not in PHANTOM_CLASSES:
            raise ValueError(f"The phantom cannot draw class {label!r}; it knows {list(PHANTOM_CLASSES)}.")
        p = cls(
            label=label,
            eye=str(rng.choice(["OD", "OS"])),
            thickness_scale=rng.uniform(0.9, 1.1),
            pit_sigma_mm=rng.uniform(0.55, 0.72),
            pit_depth=rng.uniform(0.88, 1.0),
            onl_peak_um=rng.uniform(95, 125),
            fovea_offset_mm=tuple(rng.normal(0, 0.08, 2)),
            tilt=tuple(rng.normal(0, 0.012, 2)),
            curvature=rng.uniform(0.0, 0.012),
            depth_fraction=rng.uniform(0.56, 0.64),
            brightness=rng.uniform(0.85, 1.1),
            contrast=rng.uniform(0.9, 1.1),
            noise=rng.uniform(0.8, 1.2),
            choroid_um=rng.uniform(220, 360),
            retinal_vessels=[(rng.uniform(0, 360), rng.uniform(0.9, 2.6)) for _ in range(int(rng.integers(2, 5)))],
        )
        if label == "healthy":
            return p
        # Lesions are large enough to read at 64x128 and close enough to the fovea that
        # most of the 12 planes cross them; some planes still miss an eccentric one.
        p.lesion_theta_deg = rng.uniform(0, 360)
        if label in ("nevus", "nevus_fluid"):
            p.lesion_radius_mm = rng.uniform(1.2, 1.9)
            p.lesion_r_mm = p.lesion_radius_mm * rng.uniform(0.3, 0.95) + 0.2
            p.lesion_height_um = rng.uniform(60, 150)
            p.lesion_depth_um = rng.uniform(140, 220)
            n_drusen = int(rng.integers(2, 7)) if rng.random() < 0.75 else 0  # "often drusen"
            for _ in range(n_drusen):
                a, r = rng.uniform(0, 2 * np.pi), p.lesion_radius_mm * np.sqrt(rng.uniform(0, 0.8))
                cx = p.lesion_r_mm * np.cos(np.radians(p.lesion_theta_deg)) + r * np.cos(a)
                cy = p.lesion_r_mm * np.sin(np.radians(p.lesion_theta_deg)) + r * np.sin(a)
                p.drusen.append((cx, cy, rng.uniform(0.08, 0.2), rng.uniform(25, 55)))
            if label == "nevus_fluid":
                p.fluid_um = rng.uniform(130, 240)
                p._place_fluid(rng.uniform(0.7, 0.95))
        else:  # melanoma
            p.lesion_radius_mm = rng.uniform(1.5, 2.3)
            p.lesion_r_mm = p.lesion_radius_mm * rng.uniform(0.4, 0.95) + 0.2
            p.lesion_height_um = rng.uniform(300, 480)
            p.lesion_depth_um = rng.uniform(250, 400)
            p.fluid_um = rng.uniform(110, 220)
            p._place_fluid(rng.uniform(0.9, 1.1))
        return p

    def _place_fluid(self, scale: float) -> None:
        """Fluid pocket over the lesion, on its far side, 0.7 mm or more from the fovea.

        Fluid under the foveal centre would change the pit's apparent depth; the phantom
        keeps it eccentric so that its fovea ground truth stays unambiguous.
        """
        self.fluid_r_mm = self.lesion_r_mm + 0.4 * self.lesion_radius_mm
        self.fluid_radius_mm = max(0.5, min(scale * self.lesion_radius_mm, self.fluid_r_mm - 0.7))
        self.fluid_r_mm = max(self.fluid_r_mm, self.fluid_radius_mm + 0.7)


def _smooth_disc(dist: np.ndarray, radius: float, edge: float) -> np.ndarray:
    """1 inside a disc, 0 outside, with a smooth (raised-cosine) rim of width `edge`."""
    t = np.clip((radius - dist) / max(edge, 1e-6), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * t)


def _dome(dist: np.ndarray, radius: float) -> np.ndarray:
    """Height profile of a dome: 1 at the centre, 0 at `radius` and beyond."""
    u = np.clip(dist / max(radius, 1e-6), 0.0, 1.0)
    return (1.0 - u**2) ** 1.5  # smooth, sloping margins


def _layer_thicknesses(p: PhantomPatient, ecc: np.ndarray, nasal_mm: np.ndarray, pit: np.ndarray) -> dict:
    """Normal layer thicknesses (um) along the scan; `pit` is 1 at the foveal centre."""
    inner = 1.0 - p.pit_depth * pit  # inner retina vanishes at the centre
    periph = np.clip((ecc - 1.8) / 1.5, 0.0, 1.0)  # outer macula thins
    s = p.thickness_scale
    return {
        "rnfl": s * (17 + 14 * np.clip(nasal_mm / 2.5, 0, 1) + 3 * periph) * inner,
        "gcl": s * 50 * (1 - 0.3 * periph) * inner,
        "ipl": s * 41 * (1 - 0.2 * periph) * inner,
        "inl": s * 38 * (1 - 0.1 * periph) * inner,
        "opl": s * (33 - 12 * pit),
        "onl": s * (66 + (p.onl_peak_um - 66) * pit - 10 * periph),
        "elm": np.full_like(ecc, 4.0),
        "myoid": s * (22 + 6 * pit),
        "ez": np.full_like(ecc, 12.0),
        "os": s * (24 + 10 * pit),  # foveal bulge of the outer segments
        "iz": np.full_like(ecc, 10.0),
        "rpe": np.full_like(ecc, 17.0),
    }


def _choroid_texture(rng: np.random.Generator, depth_px: int, width: int, px_um: tuple[float, float]) -> np.ndarray:
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


def _speckle(rng: np.random.Generator, shape: tuple[int, int], grain_px: tuple[float, float], sigma: float) -> np.ndarray:
    """Log of multiplicative speckle, standard deviation `sigma` (natural log units).

    Fully developed speckle has exponential intensity (Rayleigh amplitude); a lateral
    blur elongates the grains. The caller scales `sigma` down for averaged looks.
    """
    s = np.log(gaussian_filter(rng.standard_exponential(size=shape, dtype=np.float32), grain_px) + 1e-3)
    return (s - s.mean()) / (s.std() + 1e-9) * sigma


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
    um_y = FRAME_DEPTH_UM / H  # um per pixel, depth
    mm_x = SCAN_WIDTH_MM / W  # mm per pixel, lateral
    phi = np.radians(plane_deg)

    # Position along the scan line (mm, through the fovea) and on the fundus.
    jitter = rng.normal(0, 0.04)  # fixation wobble between planes
    s = (np.arange(W) + 0.5) * mm_x - SCAN_WIDTH_MM / 2 + jitter
    fx = patient.fovea_offset_mm[0] + s * np.cos(phi)
    fy = patient.fovea_offset_mm[1] + s * np.sin(phi)
    ecc = np.abs(s)
    # RNFL thickens towards the optic disc: nasal is +x for a right eye, -x for a left one.
    nasal_mm = np.maximum(s * np.cos(phi) * (1 if patient.eye == "OD" else -1), 0.0)

    # Foveal pit profile (1 at the centre); defects change it.
    pit = np.exp(-((s / patient.pit_sigma_mm) ** 2))
    pit_depth = patient.pit_depth
    fovea_centres_mm = [0.0]
    if defect == "double_fovea":
        sep = rng.uniform(0.9, 1.4)  # two pits, each a full fovea
        fovea_centres_mm = [-sep, sep]
        pit = np.maximum(*(np.exp(-(((s - c) / patient.pit_sigma_mm) ** 2)) for c in fovea_centres_mm))
        ecc = np.min([np.abs(s - c) for c in fovea_centres_mm], axis=0)
    elif defect == "flat_fovea":
        pit_depth = rng.uniform(0.25, 0.4)  # hypoplastic: inner layers continue over the fovea
    elif defect == "no_fovea":
        pit_depth, fovea_centres_mm = 0.0, []
    pp = PhantomPatient(**{**asdict(patient), "pit_depth": pit_depth})
    th = _layer_thicknesses(pp, ecc, nasal_mm, pit if pit_depth > 0 else np.zeros_like(s))
    if pit_depth < patient.pit_depth or not fovea_centres_mm:
        # Without a (full) pit the ONL and photoreceptors stay at their pericentral size.
        flat = _layer_thicknesses(pp, ecc, nasal_mm, np.zeros_like(s))
        for k in ("onl", "opl", "myoid", "os"):
            th[k] = flat[k] + (th[k] - flat[k]) * (pit_depth / max(patient.pit_depth, 1e-6))

    # Boundaries are never perfectly smooth: a slow ripple in every layer's thickness.
    ripple = gaussian_filter(rng.standard_normal((len(th), W)), (0, W / 40), mode="nearest")
    ripple *= 0.06 / (ripple.std() + 1e-9)
    th = {k: v * (1 + r) for (k, v), r in zip(th.items(), ripple)}

    # Lesion on the fundus: distance of each scan point from the lesion centre.
    th["fluid"] = np.zeros(W)
    th["drusen"] = np.zeros(W)
    elevation = np.zeros(W)  # um, Bruch's membrane pushed up by the lesion
    mass_depth = np.zeros(W)  # um, lesion thickness below the original Bruch's membrane
    lesion = None
    if patient.lesion_radius_mm > 0:
        lt = np.radians(patient.lesion_theta_deg)
        lx, ly = patient.lesion_r_mm * np.cos(lt), patient.lesion_r_mm * np.sin(lt)
        dist = np.hypot(fx - patient.fovea_offset_mm[0] - lx, fy - patient.fovea_offset_mm[1] - ly)
        if patient.label == "melanoma":
            elevation = patient.lesion_height_um * _dome(dist, patient.lesion_radius_mm)
            mass_depth = patient.lesion_depth_um * _dome(dist, patient.lesion_radius_mm * 1.05) ** 0.5
        else:  # nevus: flat or slightly elevated plateau
            plateau = _smooth_disc(dist, patient.lesion_radius_mm, 0.9)  # tapering margins
            elevation = patient.lesion_height_um * plateau
            mass_depth = patient.lesion_depth_um * np.sqrt(plateau)  # rounded posterior border
        if patient.fluid_um > 0:
            fr = patient.fluid_r_mm
            fdist = np.hypot(fx - patient.fovea_offset_mm[0] - fr * np.cos(lt), fy - patient.fovea_offset_mm[1] - fr * np.sin(lt))
            th["fluid"] = patient.fluid_um * _dome(fdist, patient.fluid_radius_mm) ** 0.8
            if patient.label == "melanoma":  # thickest on the dome's flank, thin over its top
                th["fluid"] *= np.clip((dist - 0.25 * patient.lesion_radius_mm) / (0.4 * patient.lesion_radius_mm), 0.25, 1)
        for dx, dy, dr, dh in patient.drusen:
            d = np.hypot(fx - patient.fovea_offset_mm[0] - dx, fy - patient.fovea_offset_mm[1] - dy)
            th["drusen"] = np.maximum(th["drusen"], dh * _dome(d, dr))
        # Drusen lift the RPE; the ONL above them thins, so the inner retina stays nearly flat.
        th["onl"] = np.maximum(th["onl"] - 0.8 * th["drusen"], 0.35 * th["onl"])
        in_lesion = mass_depth > 1.0
        lesion = {
            "type": patient.label,
            "x_range": [int(np.argmax(in_lesion)), int(W - 1 - np.argmax(in_lesion[::-1]))] if in_lesion.any() else None,
            "height_px": round(float(elevation.max() / um_y), 1),
            "fluid_x_range": (
                [int(np.argmax(th["fluid"] > 5)), int(W - 1 - np.argmax(th["fluid"][::-1] > 5))]
                if (th["fluid"] > 5).any() else None
            ),
        }

    # Bruch's membrane in pixels: depth, per-plane tilt, eye curvature, lesion elevation.
    tilt_plane = patient.tilt[0] * np.cos(phi) + patient.tilt[1] * np.sin(phi)
    bm = H * (patient.depth_fraction + tilt_plane * s - patient.curvature * s**2) - elevation / um_y
    # Layer boundaries (top edge of each layer), bottom-up, then reversed to top-down.
    tops, acc = [], bm.copy()
    for name, _ in _LAYERS_BOTTOM_UP:
        acc = acc - th[name] / um_y
        tops.append(acc)
    # Like an operator moving the reference arm: keep a tall dome's retina in the frame.
    shift = max(0.0, 0.05 * H - float(acc.min()))
    bm, tops = bm + shift, [t + shift for t in tops]
    tops = np.stack(tops[::-1])  # (K, W), top-down: rnfl top (= ILM) first
    refl = np.array([v for _, v in _LAYERS_BOTTOM_UP[::-1]], dtype=np.float32)
    refl = np.repeat(refl[:, None], W, axis=1)
    names = [n for n, _ in _LAYERS_BOTTOM_UP[::-1]]
    if patient.label == "melanoma" and lesion is not None:
        over = np.clip(elevation / (0.5 * patient.lesion_height_um), 0, 1)
        refl[names.index("ez")] -= 0.45 * over  # loss of the ellipsoid zone over the dome
        refl[names.index("elm")] -= 0.2 * over
        refl[names.index("iz")] -= 0.25 * over
    # Layers as anti-aliased bands: occupancy of each pixel row by each layer.
    y = np.arange(H, dtype=np.float32)[:, None, None] + 0.5
    cover = np.clip(y - tops.T[None].astype(np.float32) + 0.5, 0.0, 1.0)  # (H, W, K): below each top
    below_bm = np.clip(y[:, :, 0] - bm[None].astype(np.float32) + 0.5, 0.0, 1.0)  # (H, W)
    occ = cover - np.concatenate([cover[:, :, 1:], below_bm[:, :, None]], axis=2)
    img = np.einsum("hwk,kw->hw", occ, refl) + _VITREOUS * (1 - cover[:, :, 0])

    # Choroid and lesion mass below Bruch's membrane, flattened to the original BM.
    depth_px = int(np.ceil(H - bm.min())) + 2  # deepest row of the frame below the membrane
    tex = _choroid_texture(rng, depth_px, W, (um_y, mm_x * 1000))
    d_um = (np.arange(H)[:, None] + 0.5 - bm[None]) * um_y  # depth below the (raised) BM
    d_idx = np.clip(np.round(d_um / um_y).astype(int), 0, depth_px - 1)
    below = np.take_along_axis(tex, d_idx, axis=0)
    # Sclera below the choroid; everything fades with depth (signal roll-off).
    below = np.where(d_um > patient.choroid_um + 0.3 * mass_depth[None], 0.36, below)
    below = below * np.exp(-np.maximum(d_um, 0) / 260.0)
    if lesion is not None:
        # Soft posterior border (~25 um), fading into the choroid rather than cut out of it.
        in_mass = np.clip(((elevation + mass_depth)[None] - d_um) / 25.0, 0, 1) * (d_um > 0)
        if patient.label == "melanoma":
            # Dense, highly reflective top with shadowing: signal dies within ~150 um.
            mass = 0.8 * np.exp(-np.maximum(d_um, 0) / 110.0) + 0.04 * gaussian_filter(rng.standard_normal((H, W)), 1.5)
            shadow = np.exp(-np.maximum(d_um - (elevation)[None] * 0.4, 0) / 90.0)
            shade = np.clip(mass_depth / max(patient.lesion_depth_um, 1) * 1.6, 0, 1)[None]
            below = in_mass * mass + (1 - in_mass) * below * (1 - shade * (1 - shadow))
        else:
            mass = 0.76 * np.exp(-np.maximum(d_um, 0) / 280.0) + 0.02 * gaussian_filter(rng.standard_normal((H, W)), 1)
            shade = np.clip(mass_depth / max(patient.lesion_depth_um, 1), 0, 1)[None] * (d_um > 0)
            below = in_mass * mass + (1 - in_mass) * below * (1 - 0.35 * shade)  # mild shadowing
    img = img * (1 - below_bm) + below * below_bm

    # Subretinal material: shaggy photoreceptor debris at the fluid roof, lipofuscin dots.
    if th["fluid"].max() > 5:
        fluid_top, fluid_bot = tops[names.index("fluid")], tops[names.index("fluid")] + th["fluid"] / um_y
        n_dots = int(rng.integers(6, 16)) if patient.label == "melanoma" else int(rng.integers(2, 7))
        cols = np.flatnonzero(th["fluid"] > 0.5 * th["fluid"].max())
        ry = max(1.0, 12 / um_y)
        rx = max(1.0, 20 / (mm_x * 1000))
        for c in rng.choice(cols, size=min(n_dots, len(cols)), replace=False):
            yc = fluid_top[c] + rng.uniform(0.0, 0.35) * (fluid_bot[c] - fluid_top[c])
            _stamp(img, yc, c, ry, rx, 0.7)

    # Retinal vessels in the inner retina cast vertical shadows.
    ilm = tops[0]
    for ang, ecc_v in patient.retinal_vessels:
        # A vessel is a straight segment of the fundus, `ecc_v` mm from the fovea with its
        # normal at `ang`; the radial plane meets it at s = ecc_v / cos(ang - plane).
        cos = np.cos(np.radians(ang - plane_deg))
        if abs(cos) < 1e-3:
            continue
        c = int(round((ecc_v / cos + SCAN_WIDTH_MM / 2 - jitter) / mm_x))
        if not 0 <= c < W:
            continue
        half = max(0.5, 0.045 / mm_x)
        cols = np.abs(np.arange(W) - c) <= half
        yv = ilm[c] + (th["rnfl"][c] + 0.6 * th["gcl"][c]) / um_y
        img[:, cols] = np.where(np.arange(H)[:, None] > yv, img[:, cols] * 0.6, img[:, cols])
        rv = max(0.8, 30 / um_y)
        _stamp(img, yv - rv, c, rv, max(half, 0.8), 0.8)

    if defect == "scrambled_layers":
        img = _scramble(img, rng)

    # Speckle and log compression: display = log(signal * speckle + floor * speckle') / D.
    D = 6.0
    grain = (max(0.35, 0.6 * H / 256), max(0.5, 1.5 * W / 512))  # grains elongated laterally
    looks = max(1.0, (256 * 512) / (H * W) / 3.0)  # smaller frames average more speckle
    sigma = 0.8 * patient.noise / np.sqrt(looks) * (3.0 if defect == "heavy_noise" else 1.0)
    lin = np.exp(D * img * patient.contrast + _speckle(rng, (H, W), grain, sigma))
    lin = lin + np.exp(D * 0.08 + _speckle(rng, (H, W), grain, 0.5 * sigma))  # noise floor
    out = np.log(lin) / D
    out = (out - 0.08) / 0.95 * patient.brightness
    if defect == "heavy_noise":
        out = out + rng.normal(0, 0.25, (H, W)) + gaussian_filter(rng.standard_normal((H, W)), 6)  # grain + blotches
    image = np.clip(out * 255, 0, 255).astype(np.uint8)

    # Ground truth, with surfaces as polylines over evenly spaced columns.
    xs = np.linspace(0, W - 1, SURFACE_POINTS).round().astype(int)
    rpe_mid = bm - th["drusen"] / um_y - 0.5 * th["rpe"] / um_y
    thickness = rpe_mid - ilm - th["fluid"] / um_y  # the neurosensory retina, fluid excluded
    centres = [int(np.clip(round((c - s[0]) / mm_x), 0, W - 1)) for c in fovea_centres_mm]
    gt = {
        "size": [H, W],
        "plane_deg": float(plane_deg),
        "label": patient.label,
        "eye": patient.eye,
        "defect": defect,
        "um_per_px": [round(um_y, 3), round(mm_x * 1000, 3)],
        "fovea_x": centres[0] if len(centres) == 1 else None,
        "fovea_xs": centres,
        "fovea_y": [round(float(ilm[c]), 1) for c in centres],
        # Pit depth: how much thinner the retina (ILM to RPE) is at the centre than at its
        # thickest within 1.5 mm; unlike the ILM's height it is not changed by a lesion below.
        "fovea_depth_px": [round(float(thickness[np.abs(s - s[c]) < 1.5].max() - thickness[c]), 1) for c in centres],
        "surface_x": xs.tolist(),
        "ilm_y": np.round(ilm[xs], 1).tolist(),
        "rpe_y": np.round(rpe_mid[xs], 1).tolist(),
        "lesion": lesion,
    }
    return image, gt


def _stamp(img: np.ndarray, yc: float, xc: float, ry: float, rx: float, value: float) -> None:
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


def _scramble(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
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


def _class_counts(num_patients: int, names: Sequence[str], weights: np.ndarray) -> list[int]:
    """Largest-remainder allocation; every class with weight > 0 gets a patient if it can."""
    raw = weights / weights.sum() * num_patients
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts))[: num_patients - counts.sum()]:
        counts[i] += 1
    if num_patients >= int((weights > 0).sum()):
        for i in np.flatnonzero((weights > 0) & (counts == 0)):
            counts[int(np.argmax(counts))] -= 1
            counts[i] = 1
    return counts.tolist()


def _resolve_weights(class_names: Sequence[str], class_weights) -> np.ndarray:
    unknown = [c for c in class_names if c not in PHANTOM_CLASSES]
    if unknown:
        raise ValueError(f"The phantom cannot draw classes {unknown}; it knows {list(PHANTOM_CLASSES)}.")
    if class_weights is None:
        weights = [DEFAULT_CLASS_WEIGHTS[c] for c in class_names]
    elif isinstance(class_weights, Mapping):
        extra = [c for c in class_weights if c not in class_names]
        if extra:
            raise ValueError(f"class_weights names {extra} that are not in class_names {list(class_names)}.")
        weights = [float(class_weights.get(c, 0.0)) for c in class_names]
    else:
        weights = [float(w) for w in class_weights]
        if len(weights) != len(class_names):
            raise ValueError(f"Got {len(weights)} class weights for {len(class_names)} classes {list(class_names)}.")
    weights = np.asarray(weights, dtype=float)
    if (weights < 0).any() or not np.isfinite(weights).all() or weights.sum() <= 0:
        raise ValueError(f"Class weights must be finite, >= 0 and not all zero; got {weights.tolist()}.")
    return weights


def phantom_patients(
    num_patients: int, seed: int = 0, class_names: Sequence[str] = CLASS_NAMES, class_weights=None
) -> list[PhantomPatient]:
    """The patients of a phantom cohort, with class counts following `class_weights`."""
    if int(num_patients) < 1:
        raise ValueError(f"num_patients must be >= 1, got {num_patients}.")
    weights = _resolve_weights(class_names, class_weights)
    counts = _class_counts(int(num_patients), class_names, weights)
    labels = [name for name, n in zip(class_names, counts) for _ in range(n)]
    np.random.default_rng([seed, 0x9A7]).shuffle(labels)
    return [PhantomPatient.sample(label, np.random.default_rng([seed, i, 1])) for i, label in enumerate(labels)]


def phantom_rows(
    num_patients: int,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    class_names: Sequence[str] = CLASS_NAMES,
    class_weights: Mapping[str, float] | Sequence[float] | None = None,
    planes_deg: Sequence[float] = RADIAL_PLANES_DEG,
) -> Iterator[dict]:
    """Yield schema rows for `num_patients` phantom exams (one exam of 12 radial planes each).

    Rows follow `medicraft_hf.schema.oct_features(class_names)`: the image is a PIL "L"
    image, `label` the class id, `source` "phantom", `ground_truth` a JSON string.
    Deterministic: the same arguments give the same rows, pixel for pixel.
    """
    from PIL import Image

    class_names = list(class_names)
    for i, patient in enumerate(phantom_patients(num_patients, seed, class_names, class_weights)):
        patient_id = f"phantom-{i + 1:04d}"
        for j, plane in enumerate(planes_deg):
            image, gt = render_bscan(patient, plane, size, seed=[seed, i, 2, j])
            row = empty_row()
            row.update(
                image=Image.fromarray(image),
                label=class_names.index(patient.label),
                patient_id=patient_id,
                exam_id=f"{patient_id}-e1",
                eye=patient.eye,
                plane_deg=float(plane),
                source="phantom",
                image_id=f"phantom-s{seed}-{i + 1:04d}-{int(round(plane)):03d}",
                ground_truth=json.dumps(gt, separators=(",", ":")),
            )
            yield row


def phantom_bscan(
    label: str = "healthy",
    seed: int = 0,
    plane_deg: float = 0.0,
    size: tuple[int, int] = DEFAULT_SIZE,
    defect: str | None = None,
) -> tuple[np.ndarray, dict]:
    """One B-scan of a random patient of class `label` (for validation, demos and tests)."""
    patient = PhantomPatient.sample(label, np.random.default_rng([seed, 7]))
    return render_bscan(patient, plane_deg, size, seed=[seed, 8, int(plane_deg * 10)], defect=defect)


PHANTOM_DESCRIPTION = """Procedural OCT phantom made by `medicraft phantom`: radial macular B-scans drawn from
the anatomy facts (layer order and reflectivity, foveal pit, choroid fading with depth,
multiplicative speckle, log compression), for the classes healthy, choroidal nevus
(flat hyper-reflective mass, often drusen), nevus with subretinal fluid, and choroidal
melanoma (dome-shaped elevation, optical shadowing, fluid, loss of the ellipsoid zone).

Each patient has one exam of 12 radial B-scans through the fovea, one every 30 degrees.
A lesion is a disc on the fundus, so its position moves with the plane angle and a plane
may miss an eccentric lesion: every row keeps the patient's (eye's) label, as in a
clinic. The `ground_truth` column (JSON) gives the fovea position and pit depth, the ILM
and RPE surfaces (polylines over `surface_x`), the lesion and fluid extents in pixels.
No real patient is involved: `patient_id`s are synthetic (`phantom-0001`, ...)."""


def build_phantom_dataset(
    num_patients: int,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    class_names: Sequence[str] = CLASS_NAMES,
    class_weights: Mapping[str, float] | Sequence[float] | None = None,
    fractions: Mapping[str, float] | None = None,
):
    """Phantom rows -> `DatasetDict` split by patient (train/validation/test)."""
    from medicraft_hf.data.build import build_dataset_dict

    rows = phantom_rows(num_patients, seed=seed, size=size, class_names=class_names, class_weights=class_weights)
    return build_dataset_dict(rows, class_names, seed=seed, fractions=fractions)


def save_phantom_dataset(dsdict, out_dir, *, name: str | None = None, seed: int = 0, size=DEFAULT_SIZE, license: str = "mit"):
    """Save a phantom `DatasetDict` in the Hub layout with its dataset card."""
    from pathlib import Path

    from medicraft_hf.cards.dataset_card import dataset_card
    from medicraft_hf.data.build import save_dataset_dict

    description = PHANTOM_DESCRIPTION + f"\n\nMade with seed {seed} at {size[0]}x{size[1]} (HxW)."
    card = dataset_card(dsdict, name=name or Path(out_dir).name, source="phantom (procedural, medicraft_hf.data.phantom)",
                        description=description, license=license)
    return save_dataset_dict(dsdict, out_dir, card=card)


def contact_sheet(size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0, planes_deg: Sequence[float] = (0, 60, 120),
                  class_names: Sequence[str] = PHANTOM_CLASSES, defects: Sequence[str] = ()):
    """A labelled PIL image: one row per class (and per defect), one column per plane."""
    from PIL import Image, ImageDraw

    H, W = size
    pad, label_h = 4, 14
    rows = [(name, None) for name in class_names] + [("healthy", d) for d in defects]
    sheet = Image.new("L", (len(planes_deg) * (W + pad) + pad, len(rows) * (H + label_h + pad) + pad), 255)
    draw = ImageDraw.Draw(sheet)
    for r, (label, defect) in enumerate(rows):
        patient = PhantomPatient.sample(label, np.random.default_rng([seed, r, 7]))
        y = pad + r * (H + label_h + pad)
        for c, plane in enumerate(planes_deg):
            image, gt = render_bscan(patient, plane, size, seed=[seed, r, c], defect=defect)
            x = pad + c * (W + pad)
            sheet.paste(Image.fromarray(image), (x, y + label_h))
            lesion = gt["lesion"]
            seen = "" if lesion is None else ("  (lesion not in this plane)" if lesion["x_range"] is None else "")
            draw.text((x + 2, y + 1), f"{defect or label}  {patient.eye}  {plane:g} deg{seen}", fill=0)
    return sheet
