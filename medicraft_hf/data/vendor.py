"""Vendor OCT exports read with `oct-converter`: one row per B-scan, identifiers hashed.

Supported: Zeiss `.img` (raw uint8 volumes) and OCT DICOM (`.dcm`). Identifiers in file
names, vendor headers and DICOM tags are never copied: the patient id becomes a salted
hash (`medicraft_hf.deid.pseudonym`), and names, birth dates and dates are not read at
all. A volume of N B-scans is taken as a radial scan through the fovea (the medicraft
protocol: 12 planes, 30 degrees apart) with plane i at ``i * 360 / N`` degrees; pass
``planes="parallel"`` for cube scans, whose rows then carry no angle (``plane_deg=None``)
and keep their plane order in the dataset.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from medicraft_hf.data.images import InvalidImageError, check_file, max_pixels_budget, rescale_to_uint8, too_large_error
from medicraft_hf.deid import pseudonym

VENDOR_EXTENSIONS = (".img", ".dcm")
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


def read_zeiss_img(path: Path, shape: tuple[int, int] = ZEISS_IMG_SHAPE, max_pixels: int | None = None) -> dict:
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
    return {"volume": volume, "patient": oct_volume.patient_id, "eye": eye, "exam": date}


def read_oct_dicom(path: Path, max_pixels: int | None = None) -> dict:
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
    return {"volume": volume, "patient": getattr(header, "PatientID", None) or None, "eye": eye,
            "exam": getattr(header, "StudyInstanceUID", None) or getattr(header, "SeriesInstanceUID", None)}


def vendor_rows(
    path: str | os.PathLike,
    label,
    *,
    img_shape: tuple[int, int] = ZEISS_IMG_SHAPE,
    planes: str = "radial",
    salt: str | None = None,
    max_pixels: int | None = None,
) -> Iterator[dict]:
    """Schema rows, one per B-scan of the vendor file at `path`, with `label`.

    A file whose header has no patient id is grouped as one patient of its own (all its
    B-scans stay in one split). Raises `InvalidImageError` for an unreadable file.
    """
    path = Path(path)
    if planes not in PLANE_LAYOUTS:
        raise ValueError(f"planes must be one of {PLANE_LAYOUTS}, got {planes!r}")
    suffix = path.suffix.lower()
    check_file(path)  # a folder, a broken link: named before any reader sees it
    if suffix == ".img":
        scan = read_zeiss_img(path, img_shape, max_pixels)
    elif suffix == ".dcm":
        scan = read_oct_dicom(path, max_pixels)
    else:
        raise InvalidImageError(path, f"unsupported vendor format {suffix!r}", f"use one of {VENDOR_EXTENSIONS}")
    try:
        volume = _volume_uint8(scan["volume"])
    except ValueError as err:
        raise InvalidImageError(path, str(err), "re-export the scan as a volume of 2-D B-scans") from None

    patient_key = scan["patient"] or f"file:{path.resolve()}"
    patient_id = pseudonym(patient_key, salt=salt)
    exam_id = pseudonym(f"{patient_key}/{scan['exam'] or path.resolve()}/{scan['eye']}", salt=salt, prefix="e")
    n = len(volume)
    for index, bscan in enumerate(volume):
        yield {
            "image": bscan,
            "label": label,
            "patient_id": patient_id,
            "exam_id": exam_id,
            "eye": scan["eye"],
            "plane_deg": 360.0 * index / n if planes == "radial" else None,
            "source": "real",
            "origin": f"{path}[{index}]",
        }
