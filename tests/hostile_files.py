"""Hostile and damaged input files that the input tests and the fuzz benchmark write."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from tests.data_inputs import bscan


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A valid-looking PNG of a few dozen bytes whose header declares width x height (8-bit gray)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def multi_frame_tiff(path: Path, frames: int = 3, seed: int = 0) -> Path:
    images = [Image.fromarray(bscan(seed + i)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:])
    return path


def tiny_dicom(path: Path, volume: np.ndarray, *, manufacturer: str | None = None) -> Path:
    """A single- or multi-frame 16-bit DICOM written with pydicom (no Manufacturer: read by pydicom)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.5.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    if manufacturer:
        ds.Manufacturer = manufacturer
    ds.PatientID = "P-1"
    ds.Modality = "OPT"
    volume = np.asarray(volume, dtype=np.uint16)
    if volume.ndim == 2:
        volume = volume[None]
    ds.NumberOfFrames, ds.Rows, ds.Columns = volume.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = volume.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
