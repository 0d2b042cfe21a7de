"""Read a radiograph from a path or bytes: pixels (bone bright) plus the few facts we keep.

Formats are recognised by their content, never by the file name: DICOM (through pydicom
and its pixel plugins, so JPEG, JPEG-LS, JPEG 2000, RLE and deflated data decode), PNG,
JPEG, TIFF and BMP (through Pillow, with EXIF orientation honoured). 12/16-bit depth is
kept as uint16.

De-identification happens here: of a DICOM header only sex, age, pixel spacing, modality
and bit depth leave this module. The pydicom dataset never escapes, and no message or
log line quotes a header value.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pydicom
from PIL import Image, ImageOps, UnidentifiedImageError
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from matcher.errors import (
    CorruptImageError,
    DicomWithoutPixelsError,
    EmptyInputError,
    ImageTooLargeError,
    MultiFrameError,
    RadiographError,
    UnsupportedCompressionError,
    UnsupportedFormatError,
)

log = logging.getLogger(__name__)

Source = str | os.PathLike[str] | bytes | bytearray | memoryview


@dataclass(frozen=True)
class ReadLimits:
    """Caps checked before any pixel is decoded (decompression bombs, absurd sizes)."""

    max_bytes: int = 256 * 2**20
    max_pixels: int = 64_000_000
    max_side: int = 16_384
    min_side: int = 32


@dataclass(frozen=True)
class RadiographMetadata:
    """What is kept of the input besides pixels. Nothing here identifies a patient."""

    source_format: str
    bits_stored: int
    sex: str | None = None
    age_months: float | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    modality: str | None = None
    inverted: bool = False  # MONOCHROME1 turned into bone-bright
    colour: bool = False  # the input had colour channels
    channel_difference: float = 0.0  # mean |R-G|,|G-B| in [0, 1]: 0 for grey saved as RGB
    exif_rotated: bool = False


@dataclass(frozen=True)
class Radiograph:
    """Greyscale pixels, bone bright (uint8 or uint16), and their metadata."""

    pixels: np.ndarray
    metadata: RadiographMetadata

    @property
    def max_value(self) -> int:
        return 255 if self.pixels.dtype == np.uint8 else 65535

    @classmethod
    def from_pixels(cls, pixels: np.ndarray, source_format: str = "stored") -> Radiograph:
        """Wrap already-decoded bone-bright pixels (e.g. from a gallery's image store)."""
        if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"expected 2-D uint8 or uint16 pixels, not {pixels.dtype} {pixels.shape}")
        return cls(pixels, RadiographMetadata(source_format, 8 if pixels.dtype == np.uint8 else 16))

    def normalised(self) -> np.ndarray:
        """Pixels as float32 in [0, 1]."""
        return self.pixels.astype(np.float32) / float(self.max_value)

    def __repr__(self) -> str:
        h, w = self.pixels.shape
        return f"Radiograph({w}x{h} {self.pixels.dtype}, {self.metadata})"


def read_radiograph(source: Source, limits: ReadLimits | None = None) -> Radiograph:
    """Read a hand radiograph; raises a `RadiographError` subclass saying what is wrong."""
    limits = limits or ReadLimits()
    data = _load_bytes(source, limits)
    kind = sniff_format(data)
    if kind is None:
        raise UnsupportedFormatError(
            "this file is not an image we can read: expected DICOM, PNG, JPEG, TIFF or BMP. "
            "Export the radiograph from the PACS as DICOM or PNG and try again."
        )
    if kind == "dicom":
        radiograph = _read_dicom(data, limits)
    else:
        radiograph = _read_png_fast(data, limits) if kind == "png" else None
        radiograph = radiograph or _read_bitmap(data, kind, limits)
    h, w = radiograph.pixels.shape
    log.debug("read %s radiograph %dx%d, %d bits", kind, w, h, radiograph.metadata.bits_stored)
    return radiograph


def sniff_format(data: bytes) -> str | None:
    """The image format from its first bytes (file names are not trusted)."""
    # first: a DICOM preamble may itself hold a TIFF header (dual-format files)
    if len(data) > 132 and data[128:132] == b"DICM":
        return "dicom"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:2] == b"BM" and len(data) > 26:
        return "bmp"
    if _looks_like_bare_dicom(data):
        return "dicom"
    return None


def _looks_like_bare_dicom(data: bytes) -> bool:
    """DICOM without the 128-byte preamble (old or raw exports): parse the header to tell."""
    if len(data) < 16 or data[:1] not in (b"\x02", b"\x08", b"\x00", b"\x10", b"\x18", b"\x20", b"\x28"):
        return False
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
    except Exception:
        return False
    return any(k in ds for k in ("SOPClassUID", "Rows", "Modality", "StudyInstanceUID"))


def _load_bytes(source: Source, limits: ReadLimits) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise RadiographError(f"no file named {path.name!r} was found; check the path")
        if path.stat().st_size > limits.max_bytes:
            raise ImageTooLargeError(_too_many_bytes(path.stat().st_size, limits))
        data = path.read_bytes()
    if not data:
        raise EmptyInputError("the file is empty (0 bytes); the upload or export did not complete")
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(_too_many_bytes(len(data), limits))
    return data


def _too_many_bytes(size: int, limits: ReadLimits) -> str:
    return f"the file is {size / 2**20:.0f} MiB, more than the {limits.max_bytes / 2**20:.0f} MiB accepted for one radiograph"


def _check_dimensions(width: int, height: int, limits: ReadLimits) -> None:
    if width < limits.min_side or height < limits.min_side:
        raise CorruptImageError(
            f"the image is only {width}x{height} pixels; a hand radiograph needs at least "
            f"{limits.min_side} pixels on each side (send the full-resolution image, not a thumbnail)"
        )
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise ImageTooLargeError(
            f"the image claims {width}x{height} pixels, beyond the {limits.max_pixels // 10**6} megapixels "
            "accepted; it may be damaged or not a radiograph"
        )


# ---------------------------------------------------------------------------------------
# PNG, JPEG, TIFF, BMP


def _read_bitmap(data: bytes, kind: str, limits: ReadLimits) -> Radiograph:
    Image.MAX_IMAGE_PIXELS = None  # our own limit is checked before decoding, below
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise CorruptImageError(f"the {kind.upper()} file is damaged and cannot be opened") from exc
    with image:
        _check_dimensions(*image.size, limits)
        if getattr(image, "n_frames", 1) > 1:
            raise MultiFrameError(f"this {kind.upper()} holds {image.n_frames} images; send a single hand radiograph")
        try:
            rotated = ImageOps.exif_transpose(image)
            rotated.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise CorruptImageError(
                f"the {kind.upper()} file is truncated or damaged (its pixels cannot be decoded); export it again"
            ) from exc
        exif_rotated = image.getexif().get(0x0112, 1) not in (1, None)
        pixels, bits, colour, difference = _bitmap_pixels(rotated)
    return Radiograph(
        pixels,
        RadiographMetadata(kind, bits, colour=colour, channel_difference=difference, exif_rotated=exif_rotated),
    )


def _read_png_fast(data: bytes, limits: ReadLimits) -> Radiograph | None:
    """PNG through OpenCV (about 40% faster than Pillow here); None hands over to Pillow.

    Pillow remains the reader for PNGs with an EXIF chunk (orientation), palettes and
    anything OpenCV cannot decode, and for its clearer handling of damaged files.
    """
    if len(data) < 33 or data[12:16] != b"IHDR" or b"eXIf" in data[: min(len(data), 1 << 16)]:
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    bit_depth, colour_type = data[24], data[25]
    _check_dimensions(width, height, limits)
    if colour_type == 3:  # palette: leave to Pillow
        return None
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        return None
    if decoded.ndim == 2:
        bits = 16 if decoded.dtype == np.uint16 else 8
        return Radiograph(decoded, RadiographMetadata("png", bits))
    if decoded.dtype != np.uint8 or bit_depth != 8:
        return None
    rgb = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGB if decoded.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return Radiograph(grey, RadiographMetadata("png", 8, colour=True, channel_difference=_channel_difference(rgb)))


def _bitmap_pixels(image: Image.Image) -> tuple[np.ndarray, int, bool, float]:
    """(grey pixels, bits, had colour channels, channel difference)."""
    mode = image.mode
    if mode in ("1", "L", "LA", "La"):
        grey = np.asarray(image.convert("L"), dtype=np.uint8)
        return grey, 8, False, 0.0
    if mode.startswith("I;16"):
        return np.asarray(image, dtype=np.uint16).copy(), 16, False, 0.0
    if mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if mode == "I" and values.min() >= 0 and values.max() <= 65535:
            return values.astype(np.uint16), 16, False, 0.0
        return _stretch_to_uint16(values), 16, False, 0.0
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 8, True, _channel_difference(rgb)


def _channel_difference(rgb: np.ndarray) -> float:
    """How colourful an RGB image is: 0 for a greyscale image stored as RGB."""
    sample = rgb[:: max(1, rgb.shape[0] // 256), :: max(1, rgb.shape[1] // 256)].astype(np.int16)
    diff = np.abs(sample[..., 0] - sample[..., 1]) + np.abs(sample[..., 1] - sample[..., 2])
    return float(diff.mean() / (2 * 255.0))


def _stretch_to_uint16(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise CorruptImageError("the image holds no valid pixel values")
    low, high = float(finite.min()), float(finite.max())
    scale = 65535.0 / (high - low) if high > low else 0.0
    return np.round((np.nan_to_num(values, nan=low) - low) * scale).astype(np.uint16)


# ---------------------------------------------------------------------------------------
# DICOM


def _read_dicom(data: bytes, limits: ReadLimits) -> Radiograph:
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:  # pydicom raises many types for malformed files
        raise CorruptImageError("the DICOM file is damaged and its header cannot be read") from exc
    pixel_keywords = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
    if not any(k in ds for k in pixel_keywords):
        raise DicomWithoutPixelsError(
            "this DICOM file holds no image (no pixel data): it may be a report or a structured document; send the radiograph itself"
        )
    frames = _int(ds.get("NumberOfFrames"), 1)
    if frames > 1:
        raise MultiFrameError(f"this DICOM holds {frames} frames; send a single-frame hand radiograph (export the one image to analyse)")
    _check_dimensions(_int(ds.get("Columns"), 0), _int(ds.get("Rows"), 0), limits)
    transfer = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        raw = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        name = transfer.name if transfer is not None else "an unknown transfer syntax"
        raise UnsupportedCompressionError(
            f"the image is compressed as {name}, which this installation cannot decode; export it uncompressed (or as PNG) and try again"
        ) from exc
    except Exception as exc:
        raise CorruptImageError("the DICOM pixel data is incomplete or damaged (the file may be truncated); export it again") from exc
    samples = _int(ds.get("SamplesPerPixel"), 1)
    colour = samples == 3 or raw.ndim == 3
    difference = 0.0
    if colour:
        rgb = np.asarray(raw)
        if rgb.dtype != np.uint8:
            rgb = (_stretch_to_uint16(rgb.astype(np.float64)) // 257).astype(np.uint8)
        difference = _channel_difference(rgb)
        values = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    else:
        values = apply_modality_lut(raw, ds).astype(np.float64)
        if "WindowCenter" in ds or "VOILUTSequence" in ds:
            values = apply_voi_lut(values, ds, index=0, prefer_lut=True).astype(np.float64)
    pixels = _stretch_to_uint16(values)
    inverted = str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1"
    if inverted:
        pixels = 65535 - pixels
    metadata = RadiographMetadata(
        source_format="dicom",
        bits_stored=_int(ds.get("BitsStored"), 16),
        sex=_dicom_sex(ds),
        age_months=_dicom_age_months(ds),
        pixel_spacing_mm=_dicom_spacing(ds),
        modality=_clean_code(ds.get("Modality")),
        inverted=inverted,
        colour=colour,
        channel_difference=difference,
    )
    del ds
    return Radiograph(pixels, metadata)


def _int(value: object, default: int) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def _clean_code(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text if re.fullmatch(r"[A-Z]{2,4}", text) else None


def _dicom_sex(ds: pydicom.Dataset) -> str | None:
    sex = str(ds.get("PatientSex", "")).strip().upper()
    return sex if sex in ("M", "F") else None


_AGE_UNITS = {"D": 1 / 30.4375, "W": 7 / 30.4375, "M": 1.0, "Y": 12.0}


def _dicom_age_months(ds: pydicom.Dataset) -> float | None:
    """PatientAge ('010Y', '018M', '030W', '200D'), else study date minus birth date."""
    age = str(ds.get("PatientAge", "")).strip().upper()
    match = re.fullmatch(r"(\d{1,3})([DWMY])", age)
    months: float | None = None
    if match:
        months = int(match.group(1)) * _AGE_UNITS[match.group(2)]
    else:
        birth = _date(ds.get("PatientBirthDate"))
        taken = next((d for d in (_date(ds.get(k)) for k in ("StudyDate", "AcquisitionDate", "SeriesDate", "ContentDate")) if d), None)
        if birth and taken and taken >= birth:
            months = (taken - birth).days / 30.4375
    if months is None or not 0.0 <= months <= 12 * 30:
        return None
    return round(months, 2)


def _date(value: object) -> dt.date | None:
    text = str(value or "").strip()
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _dicom_spacing(ds: pydicom.Dataset) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        try:
            row, col = float(value[0]), float(value[1])  # type: ignore[index]
        except (TypeError, ValueError, IndexError):
            continue
        if 0.0 < row < 5.0 and 0.0 < col < 5.0:
            return (row, col)
    return None
