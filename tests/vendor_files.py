"""Vendor OCT exports the tests write themselves, with known pixels, geometry and planted identifiers.

Each writer lays the file out with the readers' own structure definitions (`construct`
structs from oct-converter's `readers.binary_structs` and eyepy's `vol_format`), so a
file is what the reader expects, not what a hand-written parser would accept. Every
writer plants identifiers (name, birth date, device serial, exam date, free text) that
must never reach a dataset, card or log; `PLANTED` lists them.
"""

from __future__ import annotations

import functools
import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

# Planted in the files' headers and names; none may appear in the built dataset.
PLANTED = ("PLANTEDMRN", "Doe", "Jane", "Roe", "Richard", "19700101", "1970-01-01", "SN-884422", "2012-07-25",
           "FREETEXT-NOTE", "#VISITNOTE")


def known_bscans(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """(n, h, w) uint8 B-scans, each distinct, none blank or saturated (the plausibility screen);
    the volume's darkest pixel is 0 and its brightest 255."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h)[None, :, None]
    x = np.linspace(0, 1, w)[None, None, :]
    phase = rng.uniform(0, 6, (n, 1, 1))
    img = np.clip(128 + 90 * np.sin(5 * y + 3 * x + phase) + rng.integers(-20, 21, (n, h, w)), 10, 245).astype(np.uint8)
    img[0, 0, 0], img[0, 0, 1] = 0, 255  # the volume spans 0..255, so a rescale over its range is the identity
    return img


# --- Heidelberg VOL (eyepy's vol_format) ----------------------------------------------------------

def write_heidelberg_vol(path: Path, bscans_uint8: np.ndarray, *, pattern: int = 3, eye: str = "OD",
                         scale_x: float = 0.0114, scale_y: float = 0.0039, distance: float = 0.12,
                         angles_deg=None, patient_id: str = "PLANTEDMRN-V") -> Path:
    """A VOL file whose float32 B-scans map back to `bscans_uint8` through eyepy's VOL intensity transform.

    pattern 3 = raster (B-scan i at y = i * distance mm), 5 = radial (B-scan i through the
    centre at `angles_deg[i]`).
    """
    import construct as cs
    from eyepy.core.utils import to_vol_intensity
    from eyepy.io.he.vol_reader import vol_format

    n, h, w = bscans_uint8.shape
    length = w * scale_x
    bscans = []
    for i in range(n):
        if pattern == 5:
            a = np.radians(angles_deg[i])
            cx = cy = 3.0
            start = (cx - length / 2 * np.cos(a), cy - length / 2 * np.sin(a))
            end = (cx + length / 2 * np.cos(a), cy + length / 2 * np.sin(a))
        else:
            start, end = (0.0, i * distance), (length, i * distance)
        bscans.append(dict(bscan_hdr_size=256, start_x=start[0], start_y=start[1], end_x=end[0], end_y=end[1], num_seg=0,
                           quality=30.0, shift=0, iv_transformation=[0.0] * 6,
                           layer_segmentations=np.zeros((0, w), np.float32),
                           data=to_vol_intensity(bscans_uint8[i]).astype(np.float32)))
    # eyepy's exam_time adapter cannot build (it hands a float to an Int64): that one field as a plain integer.
    fmt = cs.Struct(*[("exam_time" / cs.Int64ul) if sc.name == "exam_time" else sc for sc in vol_format.subcons])
    data = fmt.build(dict(
        version="HSF-OCT-103", size_x=w, n_bscans=n, size_y=h, scale_x=scale_x, distance=distance, scale_y=scale_y,
        size_x_slo=4, size_y_slo=4, scale_x_slo=0.01, scale_y_slo=0.01, field_size_slo=30, scan_focus=0.0,
        scan_position=eye, exam_time=129877003320000000, scan_pattern=pattern, bscan_hdr_size=256,
        id="SN-884422", reference_id="", pid=77, patient_id=patient_id, dob="1970-01-01T00:00:00", vid=1,
        visit_id="#VISITNOTE", visit_date="2012-07-25T00:00:00", grid_type=0, grid_offset=0, grid_type1=0,
        grid_offset1=0, prog_id="FREETEXT-NOTE", localizer=np.full((4, 4), 100, np.uint8), bscans=bscans))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- Heidelberg E2E (oct-converter's e2e_binary) --------------------------------------------------

def e2e_codes_for(targets: np.ndarray) -> np.ndarray:
    """uint16 E2E codes that oct-converter's reader turns into `targets` (uint8) after its intensity
    transform and medicraft's x255 rounding; targets are first moved to the nearest reachable value."""
    lut = e2e_display_lut()
    reachable = {}
    for code in range(2**16):
        reachable.setdefault(int(lut[code]), code)
    values = np.array(sorted(reachable))
    nearest = values[np.abs(values[None, :] - targets.reshape(-1, 1).astype(int)).argmin(1)]
    return np.array([reachable[v] for v in nearest], np.uint16).reshape(targets.shape)


@functools.cache
def e2e_display_lut() -> np.ndarray:
    """uint8 that each uint16 code of an E2E B-scan becomes: oct-converter's float decoding and
    intensity transform, then round(255 * value)."""
    from oct_converter.readers.e2e import E2E

    reader = E2E.__new__(E2E)
    reader.power = 2**10
    floats = np.array([reader.uint16_to_ufloat16(i) for i in range(2**16)])
    return np.round(255 * reader.vol_intensity_transform(floats)).astype(np.uint8)


def write_heidelberg_e2e(path: Path, volumes, *, patient_id: str = "PLANTEDMRN-E", truncate_last_at: int | None = None) -> Path:
    """An E2E file holding several volumes (series) of one patient.

    `volumes`: dicts with `codes` ((n, h, w) uint16 from `e2e_codes_for`, or a list of 2-D
    arrays), `eye` ("R"/"L"),
    `pattern` (a 9006 scan-pattern text such as "OCT Star Scan" or "OCT ART Volume") and
    `scale_y` (mm per pixel in depth), optionally `positions` (each B-scan's (start, end) in
    degrees; default: parallel lines 1 degree apart). With `truncate_last_at`, the file is cut that many
    bytes into the last volume's last image (a damaged export).
    """
    from oct_converter.readers.binary_structs import e2e_binary as e2e

    containers = []  # (patient, study, series, slice, ind, type, payload)
    patient = e2e.patient_id_structure.build(dict(first_name="Jane", surname="Doe", title="Dr", birthdate=19700101,
                                                  sex="F", patient_id=patient_id))
    containers.append((1, -1, -1, -1, 0, 9, patient))
    for v, vol in enumerate(volumes):
        series, pid = 10 + v, vol.get("patient_db", 1)  # patient_db: the file's internal patient number
        codes = vol["codes"]  # (n, h, w), or a list of 2-D arrays (B-scans of differing sizes)
        n = len(codes)
        containers.append((pid, 1, series, -1, 0, 3, e2e.pre_data.build(dict(unknown=0, laterality=vol["eye"]))))
        # Type 11 holds the eye too (eyepy reads it; oct-converter reads type 3).
        containers.append((pid, 1, series, -1, 0, 11, e2e.lat_structure.build(dict(unknown=[0] * 14, laterality=vol["eye"],
                                                                                unknown2=0))))
        text = [vol["pattern"], "FREETEXT-NOTE"]
        containers.append((pid, 1, series, -1, 0, 9006, e2e.scan_pattern.build(dict(n_strings=2, string_size=128, text=text))))
        for kind, struct_, strings in ((9005, e2e.examined_structure, ["Retina"]),
                                       (9007, e2e.enface_modality, ["Infra-Red", "IR"]),
                                       (9008, e2e.oct_modality, ["OCT", "OCT"]),
                                       (9001, e2e.device_name, ["Heidelberg Retina Angiograph", "HRA", "SN-884422"])):
            payload = struct_.build(dict(n_strings=len(strings), string_size=128, text=strings))
            containers.append((pid, 1, series, -1, 0, kind, payload))
        for i in range(n):
            h, w = codes[i].shape
            start, end = vol["positions"][i] if "positions" in vol else ((0.0, float(i)), (20.0, float(i)))
            meta = dict(unknown1=0, imgSizeY=h, imgSizeX=w, posX1=start[0], posY1=start[1], posX2=end[0], posY2=end[1], zero1=0,
                        unknown2=0.0, scaley=vol["scale_y"], unknown3=0.0, zero2=0, unknown4=[0.0, 0.0], zero3=0,
                        imgSizeWidth=w, numImages=n, aktImage=i, scanType=0, centrePosX=0.0, centrePosY=0.0, unknown5=0,
                        acquisitionTime=129877003320000000, numAve=16, imgQuality=30.0)
            # 428 bytes as devices write it: oct-converter reads the first 104, eyepy all of them.
            containers.append((pid, 1, series, 2 * i, 0, 10004, e2e.bscan_metadata.build(meta).ljust(428, b"\0")))
            image = e2e.image_structure.build(dict(size=h * w * 2, type=35652097, unknown=h * w, height=h, width=w))
            containers.append((pid, 1, series, 2 * i, 1, 1073741824, image + codes[i].astype("<u2").tobytes()))

    n_entries = len(containers)
    directory_at = 36 + 52
    data_at = directory_at + 52 + 44 * n_entries
    header = e2e.header_structure.build(dict(magic1="CMDb", version=100, unknown=[0] * 10))
    main = dict(magic2="MDbMDir", version=100, unknown=[0] * 10, num_entries=n_entries, current=directory_at, prev=0,
                unknown3=0)
    entries, blobs, at = [], [], data_at
    for index, (pat, study, series, slice_id, ind, kind, payload) in enumerate(containers):
        study, series = study % 2**32, series % 2**32  # -1 ("none") as the unsigned fields store it
        entries.append(e2e.sub_directory_structure.build(dict(
            pos=directory_at + 52 + 44 * index, start=at, size=len(payload), unknown=0, patient_db_id=pat, study_id=study,
            series_id=series, slice_id=slice_id, unknown2=ind, unknown3=0, type=kind, unknown4=0)))
        chunk = e2e.chunk_structure.build(dict(
            magic3="MDbData", unknown=0, unknown2=0, pos=at, size=len(payload), unknown3=0, patient_db_id=pat,
            study_id=study, series_id=series, slice_id=slice_id, ind=ind, unknown4=0, type=kind, unknown5=0))
        blobs.append(chunk + payload)
        at += len(chunk) + len(payload)
    data = header + e2e.main_directory_structure.build(main) + e2e.main_directory_structure.build(main)
    data += b"".join(entries) + b"".join(blobs)
    if truncate_last_at is not None:
        data = data[: len(data) - len(containers[-1][-1]) + truncate_last_at]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- Topcon FDS / FDA (oct-converter's fds_binary / fda_binary) -----------------------------------

def _topcon_chunk(name: str, payload: bytes) -> bytes:
    return bytes([len(name)]) + name.encode() + struct.pack("<I", len(payload)) + payload


def _topcon_common(binary, *, eye: int, scan_mode: int, width: int, slices: int, x_mm: float, y_mm: float,
                   z_um: float) -> bytes:
    patient = binary.patient_info_02_header.build(dict(
        patient_id="PLANTEDMRN-T", first_name="Richard", last_name="Roe", mid_name="X", sex=1, birth_date=[1970, 1, 1],
        occup_reg=[[0] * 20] * 2, r_date=[2012, 7, 25], record_id=[0] * 16, lv_date=[2012, 7, 25],
        physician=[[0] * 64] * 2, zip_code=[0] * 12, addr=[[0] * 48] * 2, phones=[[0] * 16] * 2, nx_date=[0] * 6,
        multipurpose_field=[[0] * 20] * 3, descp=list(b"FREETEXT-NOTE".ljust(64, b"\0")), reserved=[0] * 32))
    capture = binary.capture_info_02_header.build(dict(eye=eye, scan_mode=scan_mode, session_id=7,
                                                       label="FREETEXT-NOTE", cap_date=[2012, 7, 25, 14, 32, 12]))
    params = binary.param_scan_04_header.build(dict(fixation=0, mirror_pos=0, polar=0, x_dimension_mm=x_mm,
                                                    y_dimension_mm=y_mm, z_resolution_um=z_um, comp_eff_2=0.0,
                                                    comp_eff_3=0.0, base_pos=0, used_calib_data=0))
    return (_topcon_chunk("@PATIENT_INFO_02", patient) + _topcon_chunk("@CAPTURE_INFO_02", capture)
            + _topcon_chunk("@PARAM_SCAN_04", params))


def write_topcon_fds(path: Path, bscans: np.ndarray, *, eye: int = 0, scan_mode: int = 2, x_mm: float = 6.0,
                     y_mm: float = 6.0, z_um: float = 2.6, truncate: int | None = None) -> Path:
    """An FDS file: uint16 B-scans (n, h, w) in an @IMG_SCAN_03 chunk. eye 0 = right, 1 = left;
    scan_mode 2 = 3-D raster, 3 = radial."""
    from oct_converter.readers.binary_structs import fds_binary

    n, h, w = bscans.shape
    header = fds_binary.header.build(dict(file_code="FOCT", file_type="FDA", major_ver=3, minor_ver=0))
    oct_header = fds_binary.oct_header.build(dict(scan_mode=scan_mode, width=w, height=h, bits_per_pixel=16,
                                                  number_slices=n, format=0, size=n * h * w * 2))
    pixels = np.asarray(bscans, "<u2").transpose(2, 1, 0).tobytes(order="F")  # reader: (w, h, n) in Fortran order
    data = header + _topcon_common(fds_binary, eye=eye, scan_mode=scan_mode, width=w, slices=n, x_mm=x_mm, y_mm=y_mm,
                                   z_um=z_um)
    data += _topcon_chunk("@IMG_SCAN_03", oct_header + pixels) + b"\0"
    if truncate is not None:
        data = data[:truncate]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_topcon_fda(path: Path, bscans_uint8: np.ndarray, *, eye: int = 1, scan_mode: int = 3, x_mm: float = 6.0,
                     y_mm: float = 6.0, z_um: float = 2.6) -> Path:
    """An FDA file: B-scans as the JPEG slices of an @IMG_JPEG chunk. Returns the path; the
    pixels the reader will decode are `fda_decoded(bscans_uint8)`."""
    from oct_converter.readers.binary_structs import fda_binary

    n, h, w = bscans_uint8.shape
    header = fda_binary.header.build(dict(file_code="FOCT", file_type="FDA", major_ver=3, minor_ver=0))
    oct_header = fda_binary.oct_header.build(dict(scan_mode=scan_mode, unknown1=0, unknown2=0, width=w, height=h,
                                                  number_slices=n, unknown3=0))
    slices = b"".join(struct.pack("<i", len(j)) + j for j in (_jpeg(b) for b in bscans_uint8))
    data = header + _topcon_common(fda_binary, eye=eye, scan_mode=scan_mode, width=w, slices=n, x_mm=x_mm, y_mm=y_mm,
                                   z_um=z_um)
    data += _topcon_chunk("@IMG_JPEG", oct_header + slices) + b"\0"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _jpeg(bscan: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(bscan).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def fda_decoded(bscans_uint8: np.ndarray) -> np.ndarray:
    """What PIL decodes from the JPEG slices `write_topcon_fda` writes (JPEG is lossy)."""
    return np.stack([np.asarray(Image.open(io.BytesIO(_jpeg(b)))) for b in bscans_uint8])


# --- Bioptigen .OCT (oct-converter's boct_binary) --------------------------------------------------

def _field(key: str, value_bytes: bytes) -> dict:
    return dict(keylength=len(key), key=key, dataLength=len(value_bytes))


def write_bioptigen_oct(path: Path, bscans: np.ndarray, *, scantype: int = 1, repeats: int = 1,
                        scanlength: float = 6.0, scandepth: float = 1.9, elscanlength: float = 6.0) -> Path:
    """A Bioptigen .OCT file: `repeats` volumes of the (n, h, w) uint16 B-scans (repeat t rolled t columns).
    scantype 1 = rectangular raster, 3 = radial."""
    from oct_converter.readers.binary_structs import boct_binary as b

    n, h, w = bscans.shape

    def intf(key, value):
        return dict(keylength=len(key), key=key, dataLength=4, value=value)

    def floatf(key, value):
        return dict(keylength=len(key), key=key, dataLength=8, value=value)

    def strf(key, value):
        return dict(keylength=len(key), key=key, dataLength=len(value), value=value)

    header = dict(
        magicNumber=0x5E9A3001, version=0x01, frameheader=dict(keylength=11, key="FRAMEHEADER", dataLength=0),
        framecount=intf("FRAMECOUNT", n * repeats), linecount=intf("LINECOUNT", w), linelength=intf("LINELENGTH", h),
        sampleformat=intf("SAMPLEFORMAT", 2), description=strf("DESCRIPTION", "FREETEXT-NOTE Doe^Jane SN-884422"),
        xmin=floatf("XMIN", 0.0), xmax=floatf("XMAX", scanlength), xcaption=strf("XCAPTION", "mm"),
        ymin=floatf("YMIN", 0.0), ymax=floatf("YMAX", scandepth), ycaption=strf("YCAPTION", "mm"),
        scantype=intf("SCANTYPE", scantype), scandepth=floatf("SCANDEPTH", scandepth),
        scanlength=floatf("SCANLENGTH", scanlength), azscanlength=floatf("AZSCANLENGTH", scanlength),
        elscanlength=floatf("ELSCANLENGTH", elscanlength), objectdistance=floatf("OBJECTDISTANCE", 0.0),
        scanangle=floatf("SCANANGLE", 0.0), scans=intf("SCANS", n), frames=intf("FRAMES", repeats),
        dopplerflag=intf("DOPPLERFLAG", 0), config=dict(keylength=6, key="CONFIG", dataLength=4, value=b"\0" * 4),    )
    header[None] = 0  # the struct's unnamed trailing 4 bytes
    frames = []
    for t in range(repeats):
        for i in range(n):
            frame_pixels = np.roll(bscans[i], t, axis=-1).astype(np.uint16).T  # stored A-scan by A-scan
            frames.append(dict(
                header=dict(framedata=dict(keylength=9, key="FRAMEDATA", dataLength=0),
                            framedatetime=dict(keylength=13, key="FRAMEDATETIME", dataLength=16,
                                               value=dict(year=2012, month=7, dow=3, day=25, hour=14, minute=32, second=12,
                                                          millisecond=0)),
                            frametimestamp=floatf("FRAMETIMESTAMP", 0.0), framelines=intf("FRAMELINES", w),
                            keylength=9, key="FRAMEDATA", dataLength=h * w * 2),
                image=dict(pixels=frame_pixels.ravel().tolist())))
            frames[-1][None] = 0
    data = b.bioptigen_file_structure.build(dict(header=header, data=frames))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- Optovue .oct + .txt (oct-converter's POCT layout) ---------------------------------------------

def write_optovue_oct(path: Path, bscans: np.ndarray, *, eye: str = "OD", volumes: int = 1,
                      physical_width_mm: float | None = 6.0, physical_height_mm: float | None = 2.0) -> Path:
    """An Optovue .oct (float32 B-scans, each stored A-scan by A-scan) and its .txt filespec.

    `volumes` > 1 declares that many scans in the filespec (a variant oct-converter misreads)."""
    n, h, w = bscans.shape
    # The reader takes slice.reshape(length, height) and rotates it 90 degrees counter-clockwise.
    stored = np.stack([np.rot90(b.astype(np.float32), -1) for b in bscans])
    lines = ["[Patient]", "Patient Name = Doe^Jane", "Birth Date = 1970-01-01", "Comment = FREETEXT-NOTE",
             "Device Serial = SN-884422", f"Eye Scanned = {eye}", f"Window Height = {h}"]
    for _ in range(volumes):
        lines += [f"Scan Length = {w}", f"Scan Usage Number = {n}"]
    if physical_width_mm is not None:
        lines += [f"Video Width = {w}", f"Physical video width = {physical_width_mm} mm"]
    if physical_height_mm is not None:
        lines += [f"Video Height = {h}", f"Physical video Height = {physical_height_mm} mm"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(stored.astype("<f4").tobytes())
    path.with_suffix(".txt").write_text("\n".join(lines) + "\n", encoding="iso-8859-1")
    return path
