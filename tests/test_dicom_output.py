"""DICOM output: a valid CR object, MONOCHROME1/2 pixels that agree, and fake PHI to strip later."""

from __future__ import annotations

from pathlib import Path

import cv2
import pandas as pd
import pydicom
import pytest


@pytest.fixture(scope="module")
def dicom_cohort(render_cohort) -> tuple[Path, pd.DataFrame]:
    return render_cohort(n=10, seed=3, size=192, format="dicom")


def test_dicoms_are_valid_cr_with_header_facts(dicom_cohort: tuple[Path, pd.DataFrame]) -> None:
    out, manifest = dicom_cohort
    for _, row in manifest.iterrows():
        ds = pydicom.dcmread(out / row["image"])
        assert ds.Modality == "CR" and ds.BitsStored == 12 and ds.BitsAllocated == 16
        assert ds.PatientSex == row["sex"]
        age = ds.PatientAge
        months = int(age[:3]) * (12 if age.endswith("Y") else 1)
        assert abs(months - row["age_months"]) < 12
        assert float(ds.PixelSpacing[0]) == pytest.approx(row["pixel_spacing_mm"], rel=1e-3)
        assert ds.pixel_array.shape == (row["height"], row["width"]) and ds.pixel_array.max() <= 4095


def test_fake_phi_is_present_for_the_deidentification_tests(dicom_cohort: tuple[Path, pd.DataFrame]) -> None:
    out, manifest = dicom_cohort
    ds = pydicom.dcmread(out / manifest["image"].iloc[0])
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "InstitutionName",
        "PatientAddress",
        "ReferringPhysicianName",
        "AccessionNumber",
        "OtherPatientIDs",
    ):
        assert str(getattr(ds, keyword)), keyword
    manifest_text = (out / "manifest.csv").read_text()
    assert str(ds.PatientName) not in manifest_text and str(ds.PatientID) not in manifest_text


def test_monochrome1_files_are_inverted_so_bone_reads_dark(dicom_cohort: tuple[Path, pd.DataFrame]) -> None:
    out, manifest = dicom_cohort
    kinds = set()
    for _, row in manifest.iterrows():
        ds = pydicom.dcmread(out / row["image"])
        hand = cv2.imread(str(out / row["mask"]), cv2.IMREAD_UNCHANGED) > 0
        pixels = ds.pixel_array.astype(float)
        hand_brighter = pixels[hand].mean() > pixels[~hand].mean()
        kinds.add(ds.PhotometricInterpretation)
        assert hand_brighter == (ds.PhotometricInterpretation == "MONOCHROME2")
    assert kinds == {"MONOCHROME1", "MONOCHROME2"}
