"""Write rendered radiographs as PNG (8/16-bit) or DICOM, byte-for-byte deterministic.

DICOM files carry *fake* protected health information on purpose: the de-identification
tests need a radiograph whose header is full of names, ids, birth dates and addresses to
prove that none of it survives reading. All values are invented from the case seed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DICOM_BITS_STORED = 12  # what most computed-radiography systems store

_GIVEN = ("Jane", "John", "Maria", "Ahmed", "Lena", "Noah", "Sofia", "Yusuf", "Emma", "Luca", "Mila", "Jonas")
_FAMILY = ("Doe", "Roe", "Miller", "Schmidt", "Okafor", "Rossi", "Nowak", "Kowalski", "Larsen", "Moreau")
_TOWNS = ("Springfield", "Riverton", "Lakeside", "Hillview", "Oakham")


def to_uint(image01: np.ndarray, bits: int) -> np.ndarray:
    """Quantise a [0, 1] image to 8-bit or 16-bit integers."""
    if bits == 8:
        return np.round(np.clip(image01, 0, 1) * 255).astype(np.uint8)
    if bits == 16:
        return np.round(np.clip(image01, 0, 1) * 65535).astype(np.uint16)
    raise ValueError(f"bits must be 8 or 16, not {bits}")


def write_png(path: Path, image01: np.ndarray, bits: int) -> None:
    if not cv2.imwrite(str(path), to_uint(image01, bits)):
        raise OSError(f"could not write {path}")


def write_mask(path: Path, mask: np.ndarray) -> None:
    if not cv2.imwrite(str(path), (mask > 0).astype(np.uint8) * 255):
        raise OSError(f"could not write {path}")


@dataclass(frozen=True)
class FakePatient:
    """Invented identity written into DICOM headers (never real, never in manifests)."""

    name: str
    patient_id: str
    birth_date: str
    study_date: str
    institution: str
    address: str
    phone: str
    accession: str
    physician: str

    @classmethod
    def invent(cls, rng: np.random.Generator, age_months: float) -> FakePatient:
        study = dt.date(2020, 1, 1) + dt.timedelta(days=int(rng.integers(0, 6 * 365)))
        birth = study - dt.timedelta(days=round(age_months * 30.4375))
        given, family = str(rng.choice(_GIVEN)), str(rng.choice(_FAMILY))
        town = str(rng.choice(_TOWNS))
        return cls(
            name=f"{family}^{given}",
            patient_id=f"PID{rng.integers(10**7, 10**8)}",
            birth_date=birth.strftime("%Y%m%d"),
            study_date=study.strftime("%Y%m%d"),
            institution=f"{town} Children's Hospital",
            address=f"{rng.integers(1, 200)} Elm Street, {town}",
            phone=f"+1-555-{rng.integers(1000, 9999)}",
            accession=f"ACC{rng.integers(10**6, 10**7)}",
            physician=f"{rng.choice(_FAMILY)!s}^{rng.choice(_GIVEN)!s}^^Dr",
        )


def _dicom_age(age_months: float) -> str:
    """DICOM Age String: months below two years, years above (e.g. '018M', '010Y')."""
    if age_months < 24:
        return f"{int(age_months):03d}M"
    return f"{int(age_months // 12):03d}Y"


def write_dicom(
    path: Path,
    image01: np.ndarray,
    *,
    sex: str,
    age_months: float,
    pixel_spacing_mm: float,
    seed: int,
    monochrome1: bool,
    patient: FakePatient,
    bits_stored: int = DICOM_BITS_STORED,
) -> None:
    """A CR radiograph, `bits_stored` 8, 12 or 16 (8 in 8-bit words, the others in 16), MONOCHROME2 or (inverted) MONOCHROME1."""
    if bits_stored not in (8, 12, 16):
        raise ValueError(f"a DICOM phantom stores 8, 12 or 16 bits, not {bits_stored}")
    top = 2**bits_stored - 1
    stored = np.round(np.clip(image01, 0, 1) * top).astype(np.uint8 if bits_stored == 8 else np.uint16)
    if monochrome1:  # bone is dark in the stored values; readers must invert
        stored = top - stored
    entropy = [f"bone2gene-synth-{seed}"]
    study_uid = generate_uid(entropy_srcs=[*entropy, "study"])
    series_uid = generate_uid(entropy_srcs=[*entropy, "series"])
    sop_uid = generate_uid(entropy_srcs=[*entropy, "sop"])

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid(entropy_srcs=["bone2gene-implementation"])
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CR_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "CR"
    ds.Manufacturer = "Bone2Gene synthetic phantom"
    ds.BodyPartExamined = "HAND"
    ds.ViewPosition = "PA"
    ds.ImageLaterality = "L"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = patient.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
    # --- fake PHI: everything below must never leave a reader ---------------------------
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = sex
    ds.PatientAge = _dicom_age(age_months)
    ds.PatientAddress = patient.address
    ds.PatientTelephoneNumbers = patient.phone
    ds.OtherPatientIDs = patient.patient_id + "-B"
    ds.InstitutionName = patient.institution
    ds.InstitutionAddress = patient.address
    ds.ReferringPhysicianName = patient.physician
    ds.OperatorsName = "Tech^Rad"
    ds.AccessionNumber = patient.accession
    ds.StudyID = patient.accession[-6:]
    # --- pixels --------------------------------------------------------------------------
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 8 if bits_stored == 8 else 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [f"{pixel_spacing_mm:.6f}", f"{pixel_spacing_mm:.6f}"]
    ds.ImagerPixelSpacing = ds.PixelSpacing
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.WindowCenter = str(2 ** (bits_stored - 1))
    ds.WindowWidth = str(2**bits_stored)
    ds.PixelData = stored.tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
