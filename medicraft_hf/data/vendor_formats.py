"""One reader per vendor format, each through oct-converter or eyepy: file -> `Volume`s.

A `Volume` holds the B-scans of one exam as the library read them plus what the header
says about the exam: the raw patient id and exam key (hashed by `vendor.vendor_rows`,
never stored), the eye, the scan pattern with each B-scan's angle or position, and the
pixel spacing. Names, birth dates, serials, dates and free text are never copied out of
the library's objects. What each format's header gives, and why each library was picked,
is in docs/building.md ("Vendor exports").
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medicraft_hf.data.images import InvalidImageError

# Vendor formats and what to do when one cannot be read, for error messages.
REEXPORT = "re-export the scan from the device software, or remove the file"


@dataclass
class Volume:
    """The B-scans of one exam and what its header says about them."""

    bscans: list  # 2-D arrays (H, W), depth down
    # "stored": uint8 kept, deeper values rescaled over the volume's range; "unit": floats in
    # [0, 1] -> round(255 x); "vol": Heidelberg VOL floats -> eyepy's `from_vol_intensity`.
    intensity: str
    patient: str | None = None  # raw id, hashed by the caller
    exam: str | None = None  # raw exam key (volume id, date), hashed by the caller
    eye: str | None = None  # "OD" / "OS"
    pattern: str | None = None  # "radial" / "raster" when the header says so
    angles_deg: list | None = None
    positions_mm: list | None = None
    spacing_mm: tuple | None = None  # (depth, lateral) of one pixel
    label: str = ""  # which volume of the file, for error messages ("volume 2 of 3")


def _eye(value) -> str | None:
    return {"R": "OD", "L": "OS", "OD": "OD", "OS": "OS"}.get(str(value or "").strip().upper())


def _even_angles(n: int) -> list[float]:
    """N radial lines through one centre, evenly over 180 degrees."""
    return [180.0 * i / n for i in range(n)]


def _positive(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _spacing(depth, lateral) -> tuple | None:
    depth, lateral = _positive(depth), _positive(lateral)
    return None if depth is None and lateral is None else (depth, lateral)


@contextlib.contextmanager
def _quiet():
    """The readers print and warn with header values (ids, file names): keep that out of the log."""
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()) as out:
        warnings.simplefilter("always")
        yield caught, out


class _NumpyWithFromstring:
    """numpy, plus the binary `fromstring` that NumPy 2 removed and oct-converter's Topcon readers call."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def fromstring(data, dtype=float, count=-1, sep=""):
        return np.frombuffer(data, dtype=dtype, count=count).copy()


def _topcon_readers():
    from oct_converter.readers import fda, fds

    for module in (fda, fds):  # oct-converter 0.7.0 calls np.fromstring(binary), removed in NumPy 2
        if not isinstance(module.np, _NumpyWithFromstring):
            module.np = _NumpyWithFromstring()
    return fds.FDS, fda.FDA


def read_heidelberg_vol(path: Path) -> list[Volume]:
    import construct
    from eyepy.io.he.vol_reader import vol_format

    with open(path, "rb") as f:
        if not f.read(12).startswith(b"HSF-OCT"):  # every VOL export starts with its version, HSF-OCT-1xx
            raise InvalidImageError(path, "not a Heidelberg VOL file (no HSF-OCT header)", REEXPORT)
        f.seek(0)
        try:
            parsed = vol_format.parse_stream(f)
        except (construct.ConstructError, ValueError, OverflowError) as err:
            raise InvalidImageError(path, f"truncated or damaged Heidelberg VOL file (eyepy: {type(err).__name__})",
                                    REEXPORT) from None
    bscans = [np.array(b.data, dtype=np.float32) for b in parsed.bscans]
    starts = [(b.start_x, b.start_y) for b in parsed.bscans]
    ends = [(b.end_x, b.end_y) for b in parsed.bscans]
    pattern = {3: "raster", 4: "raster", 5: "radial"}.get(parsed.scan_pattern)
    angles = positions = None
    if pattern == "radial":
        angles = [math.degrees(math.atan2(e[1] - s[1], e[0] - s[0])) % 360.0 for s, e in zip(starts, ends)]
    elif pattern == "raster":
        mid0 = np.add(starts[0], ends[0]) / 2
        positions = [float(np.hypot(*(np.add(s, e) / 2 - mid0))) for s, e in zip(starts, ends)]
    return [Volume(bscans, "vol", patient=parsed.patient_id.strip() or None,
                   exam=f"{parsed.id}/{parsed.exam_time}/{parsed.scan_position}", eye=_eye(parsed.scan_position),
                   pattern=pattern, angles_deg=angles, positions_mm=positions,
                   spacing_mm=_spacing(parsed.scale_y, parsed.scale_x))]


def read_heidelberg_e2e(path: Path) -> list[Volume]:
    """Every OCT volume (series) of the file, one `Volume` each; a volume whose images could not
    be decoded comes back as an `InvalidImageError` in its place, so the others are kept."""
    from oct_converter.readers import E2E

    try:
        with _quiet() as (caught, _):
            volumes = E2E(path).read_oct_volume()
    except Exception as err:  # construct, struct and index errors of a damaged or foreign file
        raise InvalidImageError(path, f"not a readable Heidelberg E2E file (oct-converter: {type(err).__name__})",
                                REEXPORT) from None
    damaged = {str(w.message).split("image id ")[1].split()[0] for w in caught if "Could not reshape image id" in str(w.message)}
    if not volumes:
        raise InvalidImageError(path, "no OCT volume in the E2E file (oct-converter found no B-scan)", REEXPORT)
    if len({str(v.volume_id).split("_")[0] for v in volumes}) > 1:  # ids are "<patient>_<study>_<series>"
        raise InvalidImageError(path, "unsupported E2E variant: volumes of several patients in one file (oct-converter "
                                      "keeps one patient id per file, so they could not be split by patient)",
                                "export each patient's exams to a file of their own")
    out = []
    patterns = (volumes[0].metadata or {}).get("scan_pattern", {})
    for number, vol in enumerate(volumes, 1):
        label = f"volume {number} of {len(volumes)}"
        if vol.volume_id in damaged:
            out.append(InvalidImageError(path, f"{label}: a B-scan's image data is cut short or damaged "
                                               "(oct-converter could not reshape it)", REEXPORT))
            continue
        text = str(patterns.get(vol.volume_id, "")).lower()
        pattern = "radial" if ("star" in text or "radial" in text) else "raster" if "volume" in text else None
        n = len(vol.volume)
        spacing = vol.pixel_spacing or [None, None]
        # oct-converter's x scale is a fixed default (E2E stores none), so only the depth spacing is kept.
        out.append(Volume([np.asarray(b, dtype=np.float64) for b in vol.volume], "unit", patient=vol.patient_id,
                          exam=f"{vol.volume_id}", eye=_eye(vol.laterality), pattern=pattern,
                          angles_deg=_even_angles(n) if pattern == "radial" else None,
                          spacing_mm=_spacing(spacing[1], None), label=label))
    return out


def read_topcon(path: Path) -> list[Volume]:
    FDS, FDA = _topcon_readers()
    reader = FDS if path.suffix.lower() == ".fds" else FDA
    try:
        with _quiet():
            vol = reader(path).read_oct_volume()
    except Exception as err:
        raise InvalidImageError(path, f"not a readable Topcon {path.suffix.lower()} file "
                                      f"(oct-converter: {type(err).__name__})", REEXPORT) from None
    if vol is None or vol.volume is None:
        raise InvalidImageError(path, "unsupported Topcon variant: no @IMG_SCAN_03 / @IMG_JPEG / @IMG_MOT_COMP_03 "
                                      "OCT chunk oct-converter reads", "export the scan as DICOM, or remove it")
    bscans = [np.asarray(b) for b in vol.volume]
    mode = (vol.oct_header or {}).get("scan_mode")
    pattern = {2: "raster", 3: "radial"}.get(mode)
    spacing = vol.pixel_spacing or [None, None, None]  # (lateral, slice, depth) in oct-converter's order
    n = len(bscans)
    slice_mm = _positive(spacing[1])
    return [Volume(bscans, "stored", patient=vol.patient_id, exam=str(vol.acquisition_date), eye=_eye(vol.laterality),
                   pattern=pattern, angles_deg=_even_angles(n) if pattern == "radial" else None,
                   positions_mm=[i * slice_mm for i in range(n)] if pattern == "raster" and slice_mm else None,
                   spacing_mm=_spacing(spacing[2], spacing[0]))]


def is_bioptigen(path: Path) -> bool:
    from oct_converter.readers.binary_structs import boct_binary

    try:
        boct_binary.bioptigen_oct_header_struct.parse_file(path)
    except Exception:
        return False
    return True


def read_bioptigen(path: Path) -> list[Volume]:
    import construct
    from oct_converter.readers import BOCT
    from oct_converter.readers.binary_structs import boct_binary

    try:
        # oct-converter prints a frame it cannot read and keeps going: parse every frame's place first.
        try:
            frames = boct_binary.bioptigen_file_structure.parse_file(path).data
        except construct.StreamError:
            frames = None
        if not frames or frames[-1].image.end > path.stat().st_size:
            raise InvalidImageError(path, "truncated Bioptigen file: its frames end before the header says", REEXPORT)
        header = boct_binary.bioptigen_oct_header_struct.parse_file(path)
        if header.dopplerflag.value:
            raise InvalidImageError(path, "unsupported Bioptigen variant: Doppler frames", "export the structural scan only")
        with _quiet() as (_, out):
            volumes = BOCT(path).read_oct_volume()
        if "Stopping load" in out.getvalue():
            raise InvalidImageError(path, "a Bioptigen frame could not be read (oct-converter stopped loading)", REEXPORT)
    except InvalidImageError:
        raise
    except Exception as err:
        raise InvalidImageError(path, f"not a readable Bioptigen .oct file (oct-converter: {type(err).__name__})",
                                REEXPORT) from None
    scantype = {1: "raster", 3: "radial"}.get(header.scantype.value)
    depth_px, lines = header.linelength.value, header.linecount.value
    spacing = _spacing(header.scandepth.value / depth_px if depth_px else None,
                       header.scanlength.value / lines if lines else None)
    out = []
    for number, vol in enumerate(volumes, 1):
        bscans = [np.asarray(b).T for b in vol.volume]  # stored A-scan by A-scan: (lines, depth) -> (depth, lines)
        n = len(bscans)
        step = header.elscanlength.value / (n - 1) if n > 1 else 0.0
        out.append(Volume(bscans, "stored", patient=None, exam=f"{vol.acquisition_date}/{number}", eye=_eye(
            {"R": "OD", "L": "OS"}.get(vol.laterality or "")), pattern=scantype,
            angles_deg=_even_angles(n) if scantype == "radial" else None,
            positions_mm=[i * step for i in range(n)] if scantype == "raster" and step > 0 else None,
            spacing_mm=spacing, label=f"volume {number} of {len(volumes)}"))
    return out


def read_optovue(path: Path) -> list[Volume]:
    from oct_converter.readers import POCT

    spec = path.with_suffix(".txt")
    if not spec.is_file():
        raise InvalidImageError(path, f"Optovue .oct without its filespec {spec.name} beside it",
                                "copy the .txt the device exported with the .oct into the same folder")
    try:
        with _quiet():
            reader = POCT(path)
            reader._read_filespec()
            scans = reader.scan_info
            if len(scans) != 1:
                raise InvalidImageError(path, f"unsupported Optovue variant: {len(scans)} scans in {spec.name} "
                                              "(oct-converter reads only one per file correctly)",
                                        "export each scan as its own file")
            need = scans[0]["height"] * scans[0]["length"] * scans[0]["number"] * 4
            if path.stat().st_size != need:
                raise InvalidImageError(path, f"{path.stat().st_size} bytes, but {spec.name} declares {need} "
                                              "(truncated, or not this scan's data)", REEXPORT)
            volumes = reader.read_oct_volume()
    except InvalidImageError:
        raise
    except Exception as err:
        raise InvalidImageError(path, f"not a readable Optovue .oct/.txt pair (oct-converter: {type(err).__name__})",
                                REEXPORT) from None
    info = reader.file_info
    vol = volumes[0]
    return [Volume([np.asarray(b, dtype=np.float32) for b in vol.volume], "stored", patient=None,
                   exam=str(info.get("acquisition_date")), eye=_eye(vol.laterality),
                   spacing_mm=_spacing(info.get("scale_y"), info.get("scale_x")))]


def read_oct(path: Path) -> list[Volume]:
    """`.oct` is Bioptigen's or Optovue's: told apart by Bioptigen's header (Optovue's has none)."""
    if is_bioptigen(path):
        return read_bioptigen(path)
    if path.with_suffix(".txt").is_file():
        return read_optovue(path)
    raise InvalidImageError(path, "neither a Bioptigen .oct (no Bioptigen header) nor an Optovue .oct (no .txt "
                                  "filespec beside it)", "keep an Optovue .oct with its .txt, or re-export the scan")


def companion_of(path: Path) -> Path | None:
    """The vendor file that `path` belongs to (an Optovue .txt beside its .oct), else None."""
    if path.suffix.lower() == ".txt":
        for suffix in (".oct", ".OCT"):
            if path.with_suffix(suffix).is_file():
                return path.with_suffix(suffix)
    return None
