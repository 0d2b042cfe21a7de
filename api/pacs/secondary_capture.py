"""The answer any viewer can show: a Secondary Capture of the film with the findings burnt in.

Left, the film (windowed to its own grey range) with the hand outline the analysis used and the
landmarks it placed; right, a panel with the same lines the Structured Report encodes. RGB, 8 bit,
in the film's study (a new series), marked as holding burnt-in annotation.
"""

from __future__ import annotations

import textwrap

import cv2
import highdicom as hd
import numpy as np
import pydicom

from api.pacs.findings import RESEARCH_NOTICE, Findings
from matcher.analysis import Analysis

MANUFACTURER = "Bone2Gene matcher"
SC_SERIES_NUMBER = 9902
SC_SERIES_DESCRIPTION = "Bone2Gene findings (research use)"
PICTURE_HEIGHT = 1024  # every picture's height: text sized to it stays legible, and the capture stays near 4 MB
OUTLINE, LANDMARK, WARNING, TEXT = (60, 220, 60), (40, 80, 255), (80, 200, 255), (235, 235, 235)  # BGR drawing colours


def film_display(pixels: np.ndarray) -> np.ndarray:
    """8-bit grey of a bone-bright film, windowed between its 1st and 99.5th percentiles (read on
    every 4th pixel of every 4th row: the same window, a sixteenth of the sorting)."""
    values = pixels.astype(np.float32)
    low, high = np.percentile(values[::4, ::4], [1.0, 99.5])
    return np.clip((values - low) / max(high - low, 1.0) * 255.0, 0, 255).astype(np.uint8)


def _film_with_overlay(pixels: np.ndarray, analysis: Analysis, scale: float) -> np.ndarray:
    grey = film_display(pixels)
    size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    picture = cv2.cvtColor(cv2.resize(grey, size, interpolation=interpolation), cv2.COLOR_GRAY2BGR)
    thickness = max(1, round(size[1] / 500))
    if analysis.outline is not None:
        cv2.polylines(picture, [np.round(analysis.outline * scale).astype(np.int32)], True, OUTLINE, thickness, cv2.LINE_AA)
    if analysis.hand is not None:
        for x, y in analysis.hand.landmarks.points:
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(picture, (round(x * scale), round(y * scale)), 2 * thickness + 1, LANDMARK, -1, cv2.LINE_AA)
    return picture


def _panel(lines: list[str], height: int) -> np.ndarray:
    width = max(480, round(height * 0.62))
    panel = np.zeros((height, width, 3), np.uint8)
    font_scale = height / 1600 * 0.9  # 0.58 at 1024 px: Hershey simplex about 13 px high
    thickness = max(1, round(font_scale * 1.6))
    step = round(34 * height / 1600)
    columns = max(20, int(width / (19 * font_scale)))
    y = step
    for line in lines:
        colour = WARNING if line.startswith(("WARNING", "No close match", "Research use")) else TEXT
        for part in textwrap.wrap(line, columns, subsequent_indent="   ") or [""]:
            if y > height - step // 2:
                return panel
            cv2.putText(panel, part, (step // 2, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, thickness, cv2.LINE_AA)
            y += step
        y += step // 3
    return panel


def findings_picture(pixels: np.ndarray, analysis: Analysis, findings: Findings) -> np.ndarray:
    """The RGB picture: the annotated film beside the findings panel."""
    scale = PICTURE_HEIGHT / pixels.shape[0]
    film = _film_with_overlay(pixels, analysis, scale)
    panel = _panel([RESEARCH_NOTICE, "", *findings.lines()], film.shape[0])
    return cv2.cvtColor(np.hstack([film, panel]), cv2.COLOR_BGR2RGB)


def secondary_capture(picture: np.ndarray, film: pydicom.Dataset, instance_number: int = 1) -> hd.sc.SCImage:
    """`picture` (RGB uint8) as a Secondary Capture in `film`'s study and patient."""
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=film,
        pixel_array=np.ascontiguousarray(picture),
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=hd.UID(),
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        patient_orientation=_orientation(film),
        laterality=_laterality(film),
        transfer_syntax_uid=pydicom.uid.ExplicitVRLittleEndian,
    )
    if "Laterality" not in sc:
        sc.Laterality = ""  # type 2: present, empty where the film does not say which hand
    sc.SeriesDescription = SC_SERIES_DESCRIPTION
    sc.BurnedInAnnotation = "YES"
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.ConversionType = "WSD"
    return sc


def _orientation(film: pydicom.Dataset) -> tuple[str, str]:
    """The film's own patient orientation (a picture keeps the film's axes), else a PA hand's usual one."""
    value = film.get("PatientOrientation")
    if value is not None and len(value) == 2 and all(str(v) for v in value):
        return (str(value[0]), str(value[1]))
    return ("L", "F")


def _laterality(film: pydicom.Dataset) -> str | None:
    """Which hand, as the film says it (Laterality, else Image Laterality); None when it does not."""
    for keyword in ("Laterality", "ImageLaterality"):
        value = str(film.get(keyword, "")).strip().upper()
        if value in ("L", "R"):
            return value
    return None
