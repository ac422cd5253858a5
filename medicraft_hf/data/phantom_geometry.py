"""Where everything lies in one phantom B-scan: the geometry stages of `render_bscan`.

Column positions along the scan line and on the fundus, the foveal pit (and the fovea
defects), layer thicknesses, the lesion where this plane crosses it, and the layer
surfaces in pixels; `ground_truth` reports them. `scan_line`, `foveal_pit` and
`retinal_layers` draw from the `Generator`, in that order; no pixel is drawn here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter

from medicraft_hf.data.phantom_anatomy import LAYERS_BOTTOM_UP, PhantomPatient, layer_thicknesses
from medicraft_hf.data.phantom_draw import dome, smooth_disc

# Scan geometry: 6 mm lateral scan, ~1.15 mm of depth in the frame (4.5 um/px at 256 px).
SCAN_WIDTH_MM = 6.0
FRAME_DEPTH_UM = 1150.0
SURFACE_POINTS = 65  # ground-truth polylines: this many evenly spaced columns


@dataclass(frozen=True)
class ScanLine:
    """Where the B-scan's columns lie: along the scan line (mm) and on the fundus."""

    H: int
    W: int
    um_y: float  # um per pixel, depth
    mm_x: float  # mm per pixel, lateral
    plane_deg: float
    phi: float  # plane angle, radians
    jitter: float  # fixation wobble between planes, mm
    s: np.ndarray  # position along the scan line, 0 at the intended fovea
    fx: np.ndarray  # fundus x and y of each column (fovea offset included)
    fy: np.ndarray
    nasal_mm: np.ndarray  # distance towards the optic disc (0 on the temporal side)


@dataclass(frozen=True)
class FovealPit:
    """The pit as this B-scan draws it (a fovea defect may double, flatten or remove it)."""

    pit: np.ndarray  # pit profile, 1 at a centre
    depth: float  # fraction of the inner retina removed at the centre
    centres_mm: list[float]  # along the scan line; two for double_fovea, none for no_fovea
    ecc: np.ndarray  # distance from the nearest centre, mm


@dataclass(frozen=True)
class LesionProfile:
    """The lesion along this plane: all zeros (and no `info`) for a healthy eye."""

    elevation: np.ndarray  # um, Bruch's membrane pushed up by the lesion
    mass_depth: np.ndarray  # um, lesion thickness below the original Bruch's membrane
    info: dict | None  # the ground truth's "lesion" entry; None for a healthy eye


def scan_line(patient: PhantomPatient, plane_deg: float, H: int, W: int, rng: np.random.Generator) -> ScanLine:
    """Column positions for a plane at `plane_deg`, with this plane's fixation wobble."""
    mm_x = SCAN_WIDTH_MM / W
    phi = np.radians(plane_deg)
    jitter = rng.normal(0, 0.04)  # fixation wobble between planes
    s = (np.arange(W) + 0.5) * mm_x - SCAN_WIDTH_MM / 2 + jitter
    # RNFL thickens towards the optic disc: nasal is +x for a right eye, -x for a left one.
    nasal_mm = np.maximum(s * np.cos(phi) * (1 if patient.eye == "OD" else -1), 0.0)
    return ScanLine(H=H, W=W, um_y=FRAME_DEPTH_UM / H, mm_x=mm_x, plane_deg=plane_deg, phi=phi, jitter=jitter, s=s,
                    fx=patient.fovea_offset_mm[0] + s * np.cos(phi), fy=patient.fovea_offset_mm[1] + s * np.sin(phi),
                    nasal_mm=nasal_mm)


def foveal_pit(patient: PhantomPatient, scan: ScanLine, defect: str | None, rng: np.random.Generator) -> FovealPit:
    """The foveal pit profile (1 at the centre); the fovea defects change it."""
    s = scan.s
    pit = np.exp(-((s / patient.pit_sigma_mm) ** 2))
    depth, centres, ecc = patient.pit_depth, [0.0], np.abs(s)
    if defect == "double_fovea":
        sep = rng.uniform(0.9, 1.4)  # two pits, each a full fovea
        centres = [-sep, sep]
        pit = np.maximum(*(np.exp(-(((s - c) / patient.pit_sigma_mm) ** 2)) for c in centres))
        ecc = np.min([np.abs(s - c) for c in centres], axis=0)
    elif defect == "flat_fovea":
        depth = rng.uniform(0.25, 0.4)  # hypoplastic: inner layers continue over the fovea
    elif defect == "no_fovea":
        depth, centres = 0.0, []
    return FovealPit(pit=pit, depth=depth, centres_mm=centres, ecc=ecc)


def retinal_layers(patient: PhantomPatient, scan: ScanLine, fovea: FovealPit, rng: np.random.Generator) -> dict:
    """Layer thicknesses (um) along the scan, with the pit as drawn and rippled boundaries."""
    pp = replace(patient, pit_depth=fovea.depth)
    no_pit = np.zeros_like(scan.s)
    th = layer_thicknesses(pp, fovea.ecc, scan.nasal_mm, fovea.pit if fovea.depth > 0 else no_pit)
    if fovea.depth < patient.pit_depth or not fovea.centres_mm:
        # Without a (full) pit the ONL and photoreceptors stay at their pericentral size.
        flat = layer_thicknesses(pp, fovea.ecc, scan.nasal_mm, no_pit)
        for k in ("onl", "opl", "myoid", "os"):
            th[k] = flat[k] + (th[k] - flat[k]) * (fovea.depth / max(patient.pit_depth, 1e-6))
    # Boundaries are never perfectly smooth: a slow ripple in every layer's thickness.
    ripple = gaussian_filter(rng.standard_normal((len(th), scan.W)), (0, scan.W / 40), mode="nearest")
    ripple *= 0.06 / (ripple.std() + 1e-9)
    return {k: v * (1 + r) for (k, v), r in zip(th.items(), ripple)}


def lesion_profile(patient: PhantomPatient, scan: ScanLine, th: dict) -> LesionProfile:
    """The lesion where this plane crosses it; adds "fluid" and "drusen" to `th` (zero if none)."""
    W, fx, fy = scan.W, scan.fx, scan.fy
    th["fluid"] = np.zeros(W)
    th["drusen"] = np.zeros(W)
    if patient.lesion_radius_mm <= 0:
        return LesionProfile(elevation=np.zeros(W), mass_depth=np.zeros(W), info=None)
    ox, oy = patient.fovea_offset_mm
    lt = np.radians(patient.lesion_theta_deg)
    lx, ly = patient.lesion_r_mm * np.cos(lt), patient.lesion_r_mm * np.sin(lt)
    dist = np.hypot(fx - ox - lx, fy - oy - ly)  # of each scan point from the lesion centre
    if patient.label == "melanoma":
        elevation = patient.lesion_height_um * dome(dist, patient.lesion_radius_mm)
        mass_depth = patient.lesion_depth_um * dome(dist, patient.lesion_radius_mm * 1.05) ** 0.5
    else:  # nevus: flat or slightly elevated plateau
        plateau = smooth_disc(dist, patient.lesion_radius_mm, 0.9)  # tapering margins
        elevation = patient.lesion_height_um * plateau
        mass_depth = patient.lesion_depth_um * np.sqrt(plateau)  # rounded posterior border
    if patient.fluid_um > 0:
        fr = patient.fluid_r_mm
        fdist = np.hypot(fx - ox - fr * np.cos(lt), fy - oy - fr * np.sin(lt))
        th["fluid"] = patient.fluid_um * dome(fdist, patient.fluid_radius_mm) ** 0.8
        if patient.label == "melanoma":  # thickest on the dome's flank, thin over its top
            th["fluid"] *= np.clip((dist - 0.25 * patient.lesion_radius_mm) / (0.4 * patient.lesion_radius_mm), 0.25, 1)
    for dx, dy, dr, dh in patient.drusen:
        th["drusen"] = np.maximum(th["drusen"], dh * dome(np.hypot(fx - ox - dx, fy - oy - dy), dr))
    # Drusen lift the RPE; the ONL above them thins, so the inner retina stays nearly flat.
    th["onl"] = np.maximum(th["onl"] - 0.8 * th["drusen"], 0.35 * th["onl"])
    in_lesion, fluid = mass_depth > 1.0, th["fluid"] > 5
    info = {
        "type": patient.label,
        "x_range": [int(np.argmax(in_lesion)), int(W - 1 - np.argmax(in_lesion[::-1]))] if in_lesion.any() else None,
        "height_px": round(float(elevation.max() / scan.um_y), 1),
        "fluid_x_range": [int(np.argmax(fluid)), int(W - 1 - np.argmax(fluid[::-1]))] if fluid.any() else None,
    }
    if patient.definitions != "study":  # the study phantom's ground truth stays as it was
        info.update(visible=_visible(mass_depth >= 0.5 * patient.lesion_depth_um, scan.mm_x, VISIBLE_LESION_MM),
                    fluid_visible=_visible(th["fluid"] >= VISIBLE_FLUID_UM, scan.mm_x, VISIBLE_FLUID_MM))
    return LesionProfile(elevation=elevation, mass_depth=mass_depth, info=info)


# "Visible" in a plane (clinic and clinic-v2 definitions): the lesion's body (at least half its thickness)
# over 0.5 mm of the scan, the fluid at least 50 um high over 0.3 mm.
VISIBLE_LESION_MM = 0.5
VISIBLE_FLUID_UM = 50.0
VISIBLE_FLUID_MM = 0.3


def _visible(mask: np.ndarray, mm_per_px: float, min_mm: float) -> bool:
    return bool(mask.sum() * mm_per_px >= min_mm)


def layer_surfaces(patient: PhantomPatient, scan: ScanLine, th: dict,
                   lesion: LesionProfile) -> tuple[np.ndarray, np.ndarray]:
    """Bruch's membrane and the top edge of every layer, in pixels: `(bm (W,), tops (K, W) top-down)`."""
    s, H = scan.s, scan.H
    # Depth, per-plane tilt, eye curvature, lesion elevation.
    tilt_plane = patient.tilt[0] * np.cos(scan.phi) + patient.tilt[1] * np.sin(scan.phi)
    bm = H * (patient.depth_fraction + tilt_plane * s - patient.curvature * s**2) - lesion.elevation / scan.um_y
    tops, acc = [], bm.copy()
    for name, _ in LAYERS_BOTTOM_UP:
        acc = acc - th[name] / scan.um_y
        tops.append(acc)
    # Like an operator moving the reference arm: keep a tall dome's retina in the frame.
    shift = max(0.0, 0.05 * H - float(acc.min()))
    return bm + shift, np.stack([t + shift for t in tops][::-1])


def ground_truth(patient: PhantomPatient, scan: ScanLine, defect: str | None, th: dict, bm: np.ndarray,
                 ilm: np.ndarray, fovea: FovealPit, lesion: LesionProfile) -> dict:
    """What was drawn, as JSON-ready values; surfaces as polylines over evenly spaced columns."""
    H, W, s, um_y, mm_x = scan.H, scan.W, scan.s, scan.um_y, scan.mm_x
    xs = np.linspace(0, W - 1, SURFACE_POINTS).round().astype(int)
    rpe_mid = bm - th["drusen"] / um_y - 0.5 * th["rpe"] / um_y
    thickness = rpe_mid - ilm - th["fluid"] / um_y  # the neurosensory retina, fluid excluded
    centres = [int(np.clip(round((c - s[0]) / mm_x), 0, W - 1)) for c in fovea.centres_mm]
    # The study phantom's ground truth has no "definitions" key (it stays as it was).
    extra = {} if patient.definitions == "study" else {"definitions": patient.definitions}
    return {**extra,
        "size": [H, W],
        "plane_deg": float(scan.plane_deg),
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
        "lesion": lesion.info,
    }
