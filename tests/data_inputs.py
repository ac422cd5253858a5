"""Input files the data tests write themselves: class folders, Kermany tree, manifest, Zeiss .img, OCT DICOM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

H, W = 16, 32  # tiny B-scans


def bscan(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """A distinct, smooth-ish uint8 image (smooth so JPEG keeps it distinct and non-constant)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h)[:, None]
    x = np.linspace(0, 1, w)[None, :]
    a, b, c = rng.uniform(0.5, 4.0, 3)
    img = 127 + 120 * np.sin(a * 6 * y + b * 3 * x + c)
    return np.clip(img, 0, 255).astype(np.uint8)


def kermany_tree(root: Path, patients_per_class: int = 4, images_per_patient: int = 2) -> Path:
    """`{train,test}/<CLASS>/<CLASS>-<patient>-<n>.jpeg`, with one patient in both splits."""
    seed = 0
    for c, cls in enumerate(("CNV", "DME", "DRUSEN", "NORMAL")):
        for p in range(patients_per_class):
            patient = 1000000 + 100 * c + p
            for n in range(images_per_patient):
                # the last image of patient 0 goes to test: Kermany's train/test share patients
                split = "test" if (p == patients_per_class - 1 or (p == 0 and n == images_per_patient - 1)) else "train"
                path = root / split / cls / f"{cls}-{patient}-{n + 1}.jpeg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(bscan(seed)).save(path, quality=95)
                seed += 1
    return root


def class_folders(root: Path, classes=("healthy", "melanoma"), patients_per_class: int = 10, images_per_patient: int = 3,
                  name: str = "{cls}-{patient}-{n}.png", seed: int = 5000) -> Path:
    """`<root>/<class>/<file>` PNGs, each patient's images named by `name` (default `<class>-<patient>-<n>.png`)."""
    for c, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for p in range(patients_per_class):
            patient = f"{2000000 + 100 * c + p}"
            for n in range(images_per_patient):
                Image.fromarray(bscan(seed)).save(root / cls / name.format(cls=cls, patient=patient, n=n + 1))
                seed += 1
    return root


def write_zeiss_img(path: Path, volume: np.ndarray) -> Path:
    """Raw uint8 (N, depth, width) volume as Zeiss writes it: Fortran order (depth, width, N)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.asfortranarray(volume.transpose(1, 2, 0)).tobytes(order="F"))
    return path


def write_oct_dicom(path: Path, volume: np.ndarray, *, patient_id="MRN-0042", patient_name="Doe^Jane", laterality="L") -> Path:
    """A multi-frame 16-bit Ophthalmic Tomography DICOM written with pydicom."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.5.4"  # Ophthalmic Tomography Image
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Manufacturer = "Acme OCT"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.ImageLaterality = laterality
    ds.Modality = "OPT"
    volume = np.asarray(volume, dtype=np.uint16)
    ds.NumberOfFrames, ds.Rows, ds.Columns = volume.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = volume.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
