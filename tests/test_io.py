"""Reading radiographs: formats, depth, DICOM LUTs and photometry, metadata, bad input, PHI."""

from __future__ import annotations

import io
import logging
import pickle
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from PIL import Image

from matcher.errors import (
    CorruptImageError,
    DicomWithoutPixelsError,
    EmptyInputError,
    ImageTooLargeError,
    MultiFrameError,
    RadiographError,
    UnsupportedFormatError,
)
from matcher.io import ReadLimits, read_radiograph, sniff_format
from training.synth.writers import FakePatient, write_dicom

# pydicom's own bundled test files (no network: never use names that pydicom downloads)
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
CR_FILES = sorted((PYDICOM_FILES / "dicomdirtests" / "77654033").glob("CR*/*"))
SMALL = ReadLimits(min_side=8)


def test_pydicom_cr_monochrome1_files_are_inverted_to_bone_bright() -> None:
    assert len(CR_FILES) == 3
    for path in CR_FILES:
        raw = pydicom.dcmread(path)
        assert raw.PhotometricInterpretation == "MONOCHROME1" and raw.BitsStored == 12
        result = read_radiograph(path, SMALL)
        assert result.pixels.dtype == np.uint16 and result.metadata.inverted
        assert result.metadata.modality == "CR" and result.metadata.bits_stored == 12
        assert result.metadata.pixel_spacing_mm == (0.1, 0.1)
        assert np.corrcoef(raw.pixel_array.ravel(), result.pixels.ravel())[0, 1] < -0.99


@pytest.mark.parametrize(
    "name",
    [
        "JPGExtended.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_RLE.dcm",
        "image_dfl.dcm",
        "JPEG2000.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
    ],
)
def test_compressed_transfer_syntaxes_decode(name: str) -> None:
    path = PYDICOM_FILES / name
    raw = pydicom.dcmread(path)
    result = read_radiograph(path, SMALL)
    assert result.pixels.shape == (raw.Rows, raw.Columns)
    assert result.pixels.dtype == np.uint16 and result.pixels.max() > result.pixels.min()
    if raw.SamplesPerPixel == 1:
        reference = pydicom.pixels.apply_modality_lut(raw.pixel_array, raw).astype(float)
        assert np.corrcoef(reference.ravel(), result.pixels.ravel())[0, 1] > 0.99
    else:
        assert result.metadata.colour and result.metadata.channel_difference > 0.01


def test_dicom_window_is_applied() -> None:
    """A VOI window narrower than the data clips it, as the radiologist sees it."""
    raw = pydicom.dcmread(CR_FILES[0])
    raw.WindowCenter, raw.WindowWidth = 1600, 400
    buffer = io.BytesIO()
    raw.save_as(buffer)
    windowed = read_radiograph(buffer.getvalue(), SMALL).pixels
    plain = read_radiograph(CR_FILES[0], SMALL).pixels
    assert (windowed == 0).sum() + (windowed == 65535).sum() > (plain == 0).sum() + (plain == 65535).sum()


def test_multi_frame_and_pixelless_dicoms_are_refused() -> None:
    with pytest.raises(MultiFrameError, match="2 frames"):
        read_radiograph(PYDICOM_FILES / "SC_rgb_rle_2frame.dcm", SMALL)
    with pytest.raises(DicomWithoutPixelsError, match="no image"):
        read_radiograph(PYDICOM_FILES / "rtplan.dcm")


def test_truncated_dicom_is_a_corrupt_image() -> None:
    with pytest.raises(CorruptImageError, match="truncated"):
        read_radiograph(PYDICOM_FILES / "MR_truncated.dcm", SMALL)


def test_real_hand_png(real_hands: list[Path]) -> None:
    result = read_radiograph(real_hands[0])
    reference = cv2.imread(str(real_hands[0]), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(result.pixels, reference) and result.metadata.source_format == "png"


@pytest.mark.parametrize("extension", [".png", ".tiff"])
def test_sixteen_bit_depth_is_kept(tmp_path: Path, extension: str) -> None:
    image = (np.linspace(0, 4095, 300 * 200).reshape(300, 200) * 16).astype(np.uint16)
    path = tmp_path / f"x{extension}"
    cv2.imwrite(str(path), image)
    result = read_radiograph(path)
    assert result.pixels.dtype == np.uint16 and np.array_equal(result.pixels, image)


def test_bytes_and_path_give_the_same_result(real_hands: list[Path]) -> None:
    a = read_radiograph(real_hands[1])
    b = read_radiograph(real_hands[1].read_bytes())
    assert np.array_equal(a.pixels, b.pixels)


def test_format_is_sniffed_from_content_not_extension(tmp_path: Path, real_hands: list[Path]) -> None:
    disguised = tmp_path / "radiograph.dcm"
    disguised.write_bytes(real_hands[0].read_bytes())
    assert read_radiograph(disguised).metadata.source_format == "png"
    assert sniff_format(b"%PDF-1.7 ...") is None


def test_grey_saved_as_rgb_versus_colour_photograph(tmp_path: Path) -> None:
    from skimage import data

    grey = data.camera()
    rgb_grey = np.stack([grey] * 3, axis=-1)
    Image.fromarray(rgb_grey).save(tmp_path / "grey.png")
    Image.fromarray(data.astronaut()).save(tmp_path / "photo.jpg", quality=92)
    as_rgb = read_radiograph(tmp_path / "grey.png")
    photo = read_radiograph(tmp_path / "photo.jpg")
    assert as_rgb.metadata.colour and as_rgb.metadata.channel_difference == 0.0
    assert np.array_equal(as_rgb.pixels, grey)
    assert photo.metadata.colour and photo.metadata.channel_difference > 0.05


def test_exif_orientation_is_honoured(tmp_path: Path) -> None:
    image = np.zeros((120, 80), np.uint8)
    image[:20, :] = 255  # a bright band at the top of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display rotates 90 degrees clockwise
    Image.fromarray(image).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    result = read_radiograph(tmp_path / "rotated.jpg")
    assert result.metadata.exif_rotated and result.pixels.shape == (80, 120)
    assert result.pixels[:, -20:].mean() > 200  # the band is now on the right


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("payload", "error", "fragment"),
    [
        (b"", EmptyInputError, "empty"),
        (b"hello, this is a text file", UnsupportedFormatError, "not an image"),
        (_png_header_only(60000, 60000), ImageTooLargeError, "60000x60000"),  # decompression bomb
        (_png_header_only(20, 20), CorruptImageError, "only 20x20"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, CorruptImageError, "damaged"),
    ],
)
def test_bad_bytes_raise_one_typed_error_family(payload: bytes, error: type, fragment: str) -> None:
    with pytest.raises(error) as err:
        read_radiograph(payload)
    assert isinstance(err.value, RadiographError) and fragment in str(err.value)


@pytest.mark.timeout(20)
def test_truncated_png_is_refused(real_hands: list[Path]) -> None:
    data = real_hands[2].read_bytes()
    with pytest.raises(CorruptImageError, match="truncated or damaged"):
        read_radiograph(data[: len(data) // 2])


@pytest.mark.timeout(20)
def test_dicom_claiming_absurd_dimensions_is_refused_before_decoding() -> None:
    ds = pydicom.dcmread(CR_FILES[0])
    ds.Rows, ds.Columns = 60000, 60000
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(ImageTooLargeError):
        read_radiograph(buffer.getvalue())


def test_missing_file_and_oversized_file(tmp_path: Path) -> None:
    with pytest.raises(RadiographError, match="no file named"):
        read_radiograph(tmp_path / "nothing.png")
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 5000)
    with pytest.raises(ImageTooLargeError, match="MiB"):
        read_radiograph(big, ReadLimits(max_bytes=1000))


# ---------------------------------------------------------------------------------------
# Metadata and de-identification


def _phi_dicom(tmp_path: Path, drop_age: bool = False, drop_pixels: bool = False) -> tuple[Path, list[str]]:
    rng = np.random.default_rng(7)
    image = np.clip(rng.normal(0.5, 0.2, (200, 160)), 0, 1).astype(np.float32)
    patient = FakePatient.invent(rng, age_months=125.0)
    path = tmp_path / "phi.dcm"
    write_dicom(path, image, sex="F", age_months=125.0, pixel_spacing_mm=0.143, seed=5, monochrome1=True, patient=patient)
    ds = pydicom.dcmread(path)
    if drop_age:
        del ds.PatientAge
    if drop_pixels:
        del ds.PixelData
    ds.save_as(path)
    phi = [
        str(ds.PatientName),
        str(ds.PatientName).replace("^", " "),
        ds.PatientID,
        ds.PatientBirthDate,
        ds.InstitutionName,
        ds.PatientAddress,
        ds.ReferringPhysicianName,
        ds.AccessionNumber,
        ds.PatientTelephoneNumbers,
        ds.OtherPatientIDs,
        ds.StudyDate,
        str(ds.StudyInstanceUID),
    ]
    return path, [str(p) for p in phi if p]


@pytest.mark.parametrize("bits", [8, 12, 16])
@pytest.mark.parametrize("monochrome1", [False, True])
def test_phantoms_written_at_each_depth_and_photometry_read_back_as_the_same_bone_bright_image(
    tmp_path: Path, bits: int, monochrome1: bool
) -> None:
    image = np.tile(np.linspace(0.0, 1.0, 160, dtype=np.float32), (120, 1))
    path = tmp_path / "p.dcm"
    patient = FakePatient.invent(np.random.default_rng(0), age_months=100.0)
    write_dicom(
        path, image, sex="M", age_months=100.0, pixel_spacing_mm=0.2, seed=1, monochrome1=monochrome1, patient=patient, bits_stored=bits
    )
    raw = pydicom.dcmread(path)
    assert raw.BitsStored == bits and raw.BitsAllocated == (8 if bits == 8 else 16)
    assert raw.PhotometricInterpretation == ("MONOCHROME1" if monochrome1 else "MONOCHROME2")
    pixels = read_radiograph(path, SMALL).pixels.astype(np.float64)
    read01 = (pixels - pixels.min()) / (pixels.max() - pixels.min())
    assert np.abs(read01 - image).max() <= 1.0 / 2**bits + 1e-3  # bone bright, whatever was stored


def test_a_phantom_dicom_depth_outside_8_12_16_is_refused(tmp_path: Path) -> None:
    patient = FakePatient.invent(np.random.default_rng(0), age_months=100.0)
    with pytest.raises(ValueError, match="8, 12 or 16"):
        write_dicom(
            tmp_path / "p.dcm",
            np.zeros((8, 8), np.float32),
            sex="M",
            age_months=1,
            pixel_spacing_mm=0.2,
            seed=1,
            monochrome1=False,
            patient=patient,
            bits_stored=10,
        )
    assert not (tmp_path / "p.dcm").exists()


def test_sex_age_and_spacing_come_from_the_header(tmp_path: Path) -> None:
    path, _ = _phi_dicom(tmp_path)
    meta = read_radiograph(path).metadata
    assert meta.sex == "F" and meta.age_months == 120.0  # PatientAge '010Y'
    assert meta.pixel_spacing_mm == pytest.approx((0.143, 0.143))
    path, _ = _phi_dicom(tmp_path, drop_age=True)
    assert read_radiograph(path).metadata.age_months == pytest.approx(125.0, abs=1.0)  # StudyDate - birth


def test_no_phi_leaves_the_reader(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path, phi = _phi_dicom(tmp_path)
    caplog.set_level(logging.DEBUG)
    result = read_radiograph(path)
    outputs = [repr(result), str(result.metadata), caplog.text]
    pickled = pickle.dumps(result)
    for value in phi:
        assert all(value not in text for text in outputs), f"PHI {value!r} leaked"
        assert value.encode() not in pickled, f"PHI {value!r} stored"
    assert result.metadata.inverted  # MONOCHROME1 was handled on the way


def test_no_phi_in_error_messages(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path, phi = _phi_dicom(tmp_path, drop_pixels=True)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DicomWithoutPixelsError) as err:
        read_radiograph(path)
    chain = str(err.value) + repr(err.value) + str(err.value.__cause__ or "") + caplog.text
    assert not [value for value in phi if value in chain]
