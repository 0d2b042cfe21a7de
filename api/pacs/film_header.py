"""The film's header as the answers need it: identity and study kept, pixels dropped, gaps filled.

The answers go back into the patient's own study, so they copy the film's patient and study
attributes. Real films (and damaged ones) leave some of them out; DICOM lets such type 2 attributes
be empty but not absent, so they are added empty. A film whose UIDs are damaged cannot be answered
into its study at all, and is refused with that reason.
"""

from __future__ import annotations

import copy

import pydicom
from pydicom.uid import UID

from matcher.errors import Bone2GeneError

REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
EMPTY_ALLOWED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime")
EMPTY_ALLOWED += ("ReferringPhysicianName", "StudyID", "AccessionNumber")


class UnanswerableFilm(Bone2GeneError, ValueError):
    """The film's header cannot carry an answer back into its study."""


def answer_header(film: pydicom.Dataset) -> pydicom.Dataset:
    """A copy of `film`'s header, without pixels, that the SR and the SC can be built from."""
    for keyword in REQUIRED_UIDS:
        value = film.get(keyword)
        if value is None or not UID(str(value)).is_valid:
            raise UnanswerableFilm(f"the film's {keyword} is missing or damaged, so no answer can be filed into its study")
    header = copy.copy(film)
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in header:
            delattr(header, keyword)
    for keyword in EMPTY_ALLOWED:
        if keyword not in header:
            setattr(header, keyword, "")
    return header
