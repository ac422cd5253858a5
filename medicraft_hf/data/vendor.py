"""Vendor OCT exports read with oct-converter or eyepy: one row per B-scan, identifiers hashed.

Supported: Zeiss `.img` (raw uint8 volumes), OCT DICOM (`.dcm`), Heidelberg `.e2e` and
`.vol`, Topcon `.fds` and `.fda`, Bioptigen and Optovue `.oct` (an Optovue `.oct` needs
its `.txt` filespec beside it); the readers are in `medicraft_hf.data.vendor_formats`.
Identifiers in file names and vendor headers are never copied: the patient id and the
exam key become salted hashes (`medicraft_hf.deid.pseudonym`); names, birth dates,
serials, dates and free text are not stored. Every row carries its `bscan_index`; a
header that states the scan pattern gives the angle (radial) or position (raster) and
pixel spacing. Where the header does not say (`.img`, `.dcm`, Optovue), `planes` is the
user's word: "radial" puts plane i of N at ``i * 360 / N`` degrees (the medicraft
protocol: 12 planes, 30 degrees apart), "parallel" gives no angle.

A file with several volumes (E2E series, Bioptigen repeats) gives one exam per volume; a
volume that cannot be read is a problem of its own, and the volumes read before and after
it are kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from medicraft_hf.data.images import InvalidImageError, check_file, max_pixels_budget, rescale_to_uint8, too_large_error
from medicraft_hf.data.problems import Problems
from medicraft_hf.data.vendor_formats import Volume, read_heidelberg_e2e, read_heidelberg_vol, read_oct, read_topcon
from medicraft_hf.deid import pseudonym

VENDOR_EXTENSIONS = (".img", ".dcm", ".e2e", ".vol", ".fds", ".fda", ".oct")
PLANE_LAYOUTS = ("radial", "parallel")
ZEISS_IMG_SHAPE = (1024, 512)  # (depth, width) of one B-scan, oct-converter's default


def _volume_uint8(volume) -> np.ndarray:
    """(N, H, W) uint8; deeper bit depths are rescaled over the whole volume's range,
    so all planes of one exam keep the same brightness scale."""
    volume = np.asarray(volume)
    if volume.ndim == 2:
        volume = volume[None]
    if volume.ndim == 4 and volume.shape[-1] in (3, 4):  # RGB DICOM frames -> luminance
        volume = volume[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        volume = np.round(volume).astype(np.uint8) if volume.max() <= 255 else volume
    if volume.ndim != 3:
        raise ValueError(f"expected a volume of B-scans (N, H, W), got shape {volume.shape}")
    return volume if volume.dtype == np.uint8 else rescale_to_uint8(volume)


def read_zeiss_img(path: Path, shape: tuple[int, int] = ZEISS_IMG_SHAPE, max_pixels: int | None = None) -> Volume:
    from oct_converter.readers import IMG

    depth, width = shape
    budget = max_pixels_budget(max_pixels)
    if depth * width > budget:
        raise too_large_error(path, width, depth, budget)
    size = path.stat().st_size
    if size == 0 or size % (depth * width):
        raise InvalidImageError(
            path, f"{size} bytes is not a whole number of {depth}x{width} B-scans",
            "pass the scan's B-scan shape with --img-shape DEPTHxWIDTH (Zeiss default 1024x512), or re-export")
    oct_volume = IMG(path).read_oct_volume(rows=depth, cols=width)
    # oct-converter parses the patient id and eye from the Zeiss file name.
    volume = np.stack([np.asarray(b) for b in oct_volume.volume])
    eye = {"R": "OD", "L": "OS"}.get(oct_volume.laterality or "")
    date = oct_volume.acquisition_date.isoformat() if oct_volume.acquisition_date else None
    return Volume(list(volume), "stored", patient=oct_volume.patient_id, exam=date, eye=eye)


def read_oct_dicom(path: Path, max_pixels: int | None = None) -> Volume:
    import pydicom
    from oct_converter.readers import Dicom

    budget = max_pixels_budget(max_pixels)

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as err:  # pydicom raises several types for a non-DICOM file
        raise InvalidImageError(path, f"not a readable DICOM file ({err})", "re-export it as DICOM or remove it") from None
    rows, columns = getattr(header, "Rows", None), getattr(header, "Columns", None)
    if isinstance(rows, int) and isinstance(columns, int) and rows * columns > budget:
        raise too_large_error(path, columns, rows, budget)
    by_oct_converter = bool(getattr(header, "Manufacturer", None))
    try:
        if by_oct_converter:
            volume = Dicom(path).read_oct_volume().volume
        else:  # oct-converter's reader needs the tag; read the same pixels with pydicom
            volume = pydicom.dcmread(path).pixel_array
    except MemoryError:
        raise InvalidImageError(path, "too large to decode in memory", "re-export the scan smaller or remove it") from None
    except ValueError as err:  # e.g. Zeiss DICOMs, which oct-converter reads differently
        reader = "oct-converter" if by_oct_converter else "pydicom"
        raise InvalidImageError(
            path, f"{reader} cannot read its pixel data ({err})", "export the scan as Zeiss .img or standard OCT DICOM"
        ) from None
    except Exception as err:
        reader = "oct-converter" if by_oct_converter else "pydicom"
        raise InvalidImageError(path, f"no readable pixel data ({reader}: {type(err).__name__}: {err})",
                                "re-export the scan or remove it") from None
    laterality = getattr(header, "ImageLaterality", None) or getattr(header, "Laterality", None)
    eye = {"R": "OD", "L": "OS"}.get(str(laterality or "").upper())
    # Only the ids needed for grouping are read, and only to be hashed.
    return Volume(volume, "stored", patient=getattr(header, "PatientID", None) or None, eye=eye,
                  exam=getattr(header, "StudyInstanceUID", None) or getattr(header, "SeriesInstanceUID", None))


def _uint8(volume: Volume) -> np.ndarray:
    """(N, H, W) uint8 by the format's intensity mapping (docs/building.md, "Intensity")."""
    shapes = {np.shape(b) for b in volume.bscans}
    if len(shapes) > 1:
        raise ValueError(f"its B-scans differ in size ({', '.join(sorted('x'.join(map(str, s)) for s in shapes))})")
    if volume.intensity == "unit":  # floats in [0, 1], already through the vendor's display transform
        return np.round(255 * np.clip(np.stack(volume.bscans), 0, 1)).astype(np.uint8)
    if volume.intensity == "vol":  # Heidelberg VOL floats: eyepy's transform (as Heidelberg's viewer shows them)
        from eyepy.core.utils import from_vol_intensity

        return np.stack([from_vol_intensity(np.array(b, dtype=np.float32)) for b in volume.bscans])
    return _volume_uint8(volume.bscans if isinstance(volume.bscans, np.ndarray) else np.stack(volume.bscans))


def read_vendor_file(path: Path, img_shape: tuple[int, int] = ZEISS_IMG_SHAPE,
                     max_pixels: int | None = None) -> list[Volume | InvalidImageError]:
    """The volumes of one vendor file; a volume that could not be read is an `InvalidImageError`
    in its place. Raises `InvalidImageError` when the file as a whole cannot be read."""
    suffix = path.suffix.lower()
    check_file(path)  # a folder, a broken link: named before any reader sees it
    if suffix == ".img":
        return [read_zeiss_img(path, img_shape, max_pixels)]
    if suffix == ".dcm":
        return [read_oct_dicom(path, max_pixels)]
    readers = {".e2e": read_heidelberg_e2e, ".vol": read_heidelberg_vol, ".fds": read_topcon, ".fda": read_topcon,
               ".oct": read_oct}
    if suffix not in readers:
        raise InvalidImageError(path, f"unsupported vendor format {suffix!r}", f"use one of {VENDOR_EXTENSIONS}")
    budget = max_pixels_budget(max_pixels)
    volumes = readers[suffix](path)
    for volume in volumes:
        if isinstance(volume, Volume):
            big = [np.shape(b) for b in volume.bscans if np.size(b) > budget]
            if big:
                raise too_large_error(path, big[0][1], big[0][0], budget)
    return volumes


def vendor_rows(
    path: str | os.PathLike,
    label,
    *,
    img_shape: tuple[int, int] = ZEISS_IMG_SHAPE,
    planes: str = "radial",
    salt: str | None = None,
    max_pixels: int | None = None,
    problems: Problems | None = None,
) -> Iterator[dict]:
    """Schema rows, one per B-scan of the vendor file at `path`, with `label`.

    A file whose header has no patient id is grouped as one patient of its own (all its
    B-scans stay in one split). Raises `InvalidImageError` for an unreadable file. A volume
    of a multi-volume file that cannot be read goes to `problems` (named by file and
    volume) and the other volumes are still read; without `problems` it is raised after the
    volumes before it were yielded.
    """
    path = Path(path)
    if planes not in PLANE_LAYOUTS:
        raise ValueError(f"planes must be one of {PLANE_LAYOUTS}, got {planes!r}")
    volumes = read_vendor_file(path, img_shape, max_pixels)
    for number, volume in enumerate(volumes):
        if isinstance(volume, InvalidImageError):
            if problems is None:
                raise volume
            problems.add(volume.file, volume.reason, volume.fix)
            continue
        try:
            pixels = _uint8(volume)
        except ValueError as err:
            where = f"{volume.label}: " if volume.label else ""
            error = InvalidImageError(path, f"{where}{err}", "re-export the scan as a volume of 2-D B-scans of one size")
            if problems is None:
                raise error from None
            problems.add(error.file, error.reason, error.fix)
            continue
        yield from _volume_rows(path, label, volume, pixels, number, planes, salt)


def _volume_rows(path: Path, label, volume: Volume, pixels: np.ndarray, number: int, planes: str, salt) -> Iterator[dict]:
    patient_key = volume.patient or f"file:{path.resolve()}"
    patient_id = pseudonym(patient_key, salt=salt)
    exam_key = f"{patient_key}/{volume.exam or path.resolve()}/{volume.eye}/{number}"
    exam_id = pseudonym(exam_key, salt=salt, prefix="e")
    n = len(pixels)
    if volume.pattern is None and planes == "radial":  # the header does not say: the user's --planes
        angles = [360.0 * i / n for i in range(n)]
    else:
        angles = volume.angles_deg
    depth, lateral = volume.spacing_mm or (None, None)
    for index, bscan in enumerate(pixels):
        yield {
            "image": bscan,
            "label": label,
            "patient_id": patient_id,
            "exam_id": exam_id,
            "eye": volume.eye,
            "plane_deg": angles[index] if angles else None,
            "bscan_index": index,
            "position_mm": volume.positions_mm[index] if volume.positions_mm else None,
            "depth_spacing_mm": depth,
            "lateral_spacing_mm": lateral,
            "source": "real",
            "origin": f"{path}[{number}:{index}]" if len(pixels) and number else f"{path}[{index}]",
        }
