"""The phantom's eye: one patient's anatomy and the normal retinal layers.

`PhantomPatient` holds everything that belongs to the eye (all 12 planes of an exam
share it): retinal thickness, the foveal pit, fixation and tilt, the lesion and its
fluid and drusen. `layer_thicknesses` turns it into layer thicknesses along a scan.
Drawing a B-scan from these is `phantom_render`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Lesion kinds the phantom can draw; class names must be among them.
PHANTOM_CLASSES: tuple[str, ...] = ("healthy", "nevus", "nevus_fluid", "melanoma")

# Class definitions. "study": the training phantom's (the demo model learned these; the
# fluid of nevus_fluid is a small eccentric pocket that only about a third of the exam's
# planes cross). "clinic": the benchmark's (docs/benchmark.md): an exam labelled
# nevus_fluid shows its fluid, a shallow serous detachment over most of the nevus, in the
# planes through it, and the ground truth says per plane whether lesion and fluid are visible.
# "clinic-v2": benchmark-v2's: the clinic definitions with one lesion footprint (size and
# position on the fundus) for every lesion class, so that how many planes show a lesion says
# nothing about its class (under "clinic" a nevus_fluid exam showed its nevus in 2-6 of 12
# planes, a nevus in 6-12: a classifier could tell them apart without seeing any fluid).
CLASS_DEFINITIONS: tuple[str, ...] = ("study", "clinic", "clinic-v2")

# Layers above Bruch's membrane, listed bottom-up: (name, display reflectivity in [0, 1]).
# Thicknesses (um) come from `layer_thicknesses`; "fluid" and "drusen" are zero where absent.
LAYERS_BOTTOM_UP: tuple[tuple[str, float], ...] = (
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
    definitions: str = "study"  # one of CLASS_DEFINITIONS

    @classmethod
    def sample(cls, label: str, rng: np.random.Generator, definitions: str = "study") -> "PhantomPatient":
        if label not in PHANTOM_CLASSES:
            raise ValueError(f"The phantom cannot draw class {label!r}; it knows {list(PHANTOM_CLASSES)}.")
        if definitions not in CLASS_DEFINITIONS:
            raise ValueError(f"Unknown phantom class definitions {definitions!r}; choose one of {list(CLASS_DEFINITIONS)}.")
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
            definitions=definitions,
        )
        if label == "healthy":
            return p
        if definitions == "clinic-v2":
            p._sample_lesion_on_shared_footprint(rng)
            return p
        # Lesions are large enough to read at 64x128 and close enough to the fovea that
        # most of the 12 planes cross them; some planes still miss an eccentric one.
        p.lesion_theta_deg = rng.uniform(0, 360)
        if label in ("nevus", "nevus_fluid"):
            p.lesion_radius_mm = rng.uniform(1.2, 1.9)
            p.lesion_r_mm = p.lesion_radius_mm * rng.uniform(0.3, 0.95) + 0.2
            p._draw_nevus_body(rng)
            if label == "nevus_fluid":
                p.fluid_um = rng.uniform(130, 240)
                p._place_fluid(rng.uniform(0.7, 0.95))
                if definitions == "clinic":  # drawn after the study's draws, which stay as they were
                    p._place_fluid_over_lesion(rng)
        else:  # melanoma
            p.lesion_radius_mm = rng.uniform(1.5, 2.3)
            p.lesion_r_mm = p.lesion_radius_mm * rng.uniform(0.4, 0.95) + 0.2
            p._draw_melanoma_body(rng)
        return p

    def _draw_nevus_body(self, rng: np.random.Generator) -> None:
        """A low plateau (60-150 um) with drusen in 3 of 4 eyes, on the footprint already drawn."""
        self.lesion_height_um = rng.uniform(60, 150)
        self.lesion_depth_um = rng.uniform(140, 220)
        self._add_drusen(rng)

    def _draw_melanoma_body(self, rng: np.random.Generator) -> None:
        """A dome of 300-480 um with fluid on its far flank, on the footprint already drawn."""
        self.lesion_height_um = rng.uniform(300, 480)
        self.lesion_depth_um = rng.uniform(250, 400)
        self.fluid_um = rng.uniform(110, 220)
        self._place_fluid(rng.uniform(0.9, 1.1))

    def _place_fluid(self, scale: float) -> None:
        """Fluid pocket over the lesion, on its far side, 0.7 mm or more from the fovea.

        Fluid under the foveal centre would change the pit's apparent depth; the phantom
        keeps it eccentric so that its fovea ground truth stays unambiguous.
        """
        self.fluid_r_mm = self.lesion_r_mm + 0.4 * self.lesion_radius_mm
        self.fluid_radius_mm = max(0.5, min(scale * self.lesion_radius_mm, self.fluid_r_mm - 0.7))
        self.fluid_r_mm = max(self.fluid_r_mm, self.fluid_radius_mm + 0.7)

    def _add_drusen(self, rng: np.random.Generator) -> None:
        n_drusen = int(rng.integers(2, 7)) if rng.random() < 0.75 else 0  # "often drusen"
        for _ in range(n_drusen):
            a, r = rng.uniform(0, 2 * np.pi), self.lesion_radius_mm * np.sqrt(rng.uniform(0, 0.8))
            cx = self.lesion_r_mm * np.cos(np.radians(self.lesion_theta_deg)) + r * np.cos(a)
            cy = self.lesion_r_mm * np.sin(np.radians(self.lesion_theta_deg)) + r * np.sin(a)
            self.drusen.append((cx, cy, rng.uniform(0.08, 0.2), rng.uniform(25, 55)))

    def _place_fluid_over_lesion(self, rng: np.random.Generator) -> None:
        """The clinic definition: a serous detachment centred on the nevus, covering 70-90% of
        its radius, 100-250 um high, its edge 0.75 mm or more from the fovea.

        So that the planes through the nevus are the planes through its fluid, the nevus is
        a smaller disc (radius 1.0-1.5 mm) off the fovea (centre 1.2-1.7 mm away, further
        when the pocket needs it): a radial line that crosses the nevus's body then crosses
        the pocket too. The nearest of the six radial lines is at most 15 degrees off the
        pocket, so at least two planes show the fluid.
        """
        self.lesion_radius_mm = rng.uniform(1.0, 1.5)
        self.fluid_radius_mm = rng.uniform(0.7, 0.9) * self.lesion_radius_mm
        self.lesion_r_mm = max(rng.uniform(1.2, 1.7), self.fluid_radius_mm + 0.75)
        self.fluid_r_mm = self.lesion_r_mm
        self.fluid_um = rng.uniform(100, 250)
        self.drusen = []
        self._add_drusen(rng)

    def _sample_lesion_on_shared_footprint(self, rng: np.random.Generator) -> None:
        """The clinic-v2 definitions: the footprint first, drawn alike for every lesion class.

        The footprint is a disc of radius 1.3-2.1 mm (2.6-4.2 mm across, a typical nevus's basal
        diameter), its centre 0.3-1.1 radii from the fovea, so most radial planes cross it (6-12
        of 12). It is drawn before anything that depends on the class: the same patient seed
        gives the same disc whatever the label. The class then shows only in what defines it: a
        nevus is a low plateau (60-150 um) with drusen in 3 of 4 eyes; nevus_fluid is that nevus
        under a serous detachment of 100-250 um centred on it, 70-90% of its radius (it may reach
        under the fovea; the pit's ground truth is measured on the retina above the fluid); a
        melanoma is a dome of 300-480 um with fluid on its far flank.
        """
        self.lesion_theta_deg = rng.uniform(0, 360)
        self.lesion_radius_mm = rng.uniform(1.3, 2.1)
        fluid_fraction = rng.uniform(0.7, 0.9)  # drawn for every class, so the draws after it line up
        self.lesion_r_mm = self.lesion_radius_mm * rng.uniform(0.3, 1.1)
        if self.label == "melanoma":
            self._draw_melanoma_body(rng)
            return
        self._draw_nevus_body(rng)
        if self.label == "nevus_fluid":
            self.fluid_radius_mm = fluid_fraction * self.lesion_radius_mm
            self.fluid_r_mm = self.lesion_r_mm
            self.fluid_um = rng.uniform(100, 250)


def layer_thicknesses(p: PhantomPatient, ecc: np.ndarray, nasal_mm: np.ndarray, pit: np.ndarray) -> dict:
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
