"""Is this DICOM object a hand film we should analyse? Said from the header alone, with a reason.

Hospitals route whole studies: a lateral view, a chest film, a report or a presentation state may
arrive beside the dorsopalmar hand. Each is skipped with a reason the log can show; no header
value that identifies the patient is quoted.
"""

from __future__ import annotations

import re

import pydicom

from api.pacs.settings import FilmFilter

LATERAL_VIEWS = {"LAT", "LATERAL", "LL", "RL", "LLD", "RLD", "OBL", "OBLIQUE"}
LATERAL_WORDS = re.compile(r"(?i)\blat(eral)?\b|\bseitlich|\bobliq")


def skip_reason(ds: pydicom.Dataset, film_filter: FilmFilter, check_pixels: bool = True) -> str | None:
    """None when `ds` is a hand film the node analyses; otherwise why it is skipped. `check_pixels`
    False: `ds` is a search result's header fields only (the pixels are checked once fetched)."""
    if check_pixels and "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        return "not an image (no pixel data): a report, a presentation state or another non-image object"
    modality = str(ds.get("Modality", "")).strip().upper()
    if modality not in film_filter.modalities:
        return f"modality {modality or 'missing'} is not one of {'/'.join(film_filter.modalities)}"
    if film_filter.studies and str(ds.get("StudyInstanceUID", "")) not in film_filter.studies:
        return "its study is not in the node's study list"
    view = str(ds.get("ViewPosition", "")).strip().upper()
    descriptions = " ".join(str(ds.get(k, "")) for k in ("SeriesDescription", "StudyDescription", "ProtocolName"))
    if view in LATERAL_VIEWS or LATERAL_WORDS.search(descriptions):
        return "a lateral or oblique view: only dorsopalmar (PA/AP) hand films are analysed"
    body_part = str(ds.get("BodyPartExamined", "")).strip().upper()
    if body_part:
        if body_part not in film_filter.body_parts:
            return f"body part {body_part} is not one of {'/'.join(film_filter.body_parts)}"
        return None
    if re.search(film_filter.description, descriptions):
        return None
    return "no body part in the header, and the series and study descriptions do not name a hand"
