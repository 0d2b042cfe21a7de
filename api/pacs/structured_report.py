"""The answer a PACS can store and a reporting system can read: a Comprehensive SR (highdicom).

It belongs to the film's own study (a new series), references the film it was read from, and
carries the findings as coded content items: numbers with their units, the ranking as one
container per candidate, the model's identity and the research-use notice.
"""

from __future__ import annotations

import highdicom as hd
import pydicom
from pydicom.sr.coding import Code

from api.pacs import codes
from api.pacs.findings import RESEARCH_NOTICE, Findings

MANUFACTURER = "Bone2Gene matcher"
SR_SERIES_NUMBER = 9901
SR_SERIES_DESCRIPTION = "Bone2Gene report (research use)"

CONTAINS, HAS_PROPERTIES = "CONTAINS", "HAS PROPERTIES"


def _text(name: Code, value: str, relation: str = CONTAINS) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=value[:1024] or "-", relationship_type=relation)


def _num(name: Code, value: float, unit: Code, relation: str = CONTAINS) -> hd.sr.NumContentItem:
    return hd.sr.NumContentItem(name=name, value=float(value), unit=unit, relationship_type=relation)


def _code(name: Code, value: Code, relation: str = CONTAINS) -> hd.sr.CodeContentItem:
    return hd.sr.CodeContentItem(name=name, value=value, relationship_type=relation)


def _container(name: Code, items: list) -> hd.sr.ContainerContentItem:
    container = hd.sr.ContainerContentItem(name=name, relationship_type=CONTAINS)
    container.ContentSequence = hd.sr.ContentSequence(items)
    return container


def _bone_age_items(f: Findings) -> list:
    items = [_num(codes.BONE_AGE, f.bone_age_months, codes.MONTHS)]
    if f.age_months is not None:
        items.append(_num(codes.CHRONOLOGICAL_AGE, f.age_months, codes.MONTHS))
    if f.bone_age_deviation_months is not None:
        items.append(_num(codes.BONE_AGE_DEVIATION, f.bone_age_deviation_months, codes.MONTHS))
    if f.bone_age_z is not None:
        items.append(_num(codes.BONE_AGE_Z, f.bone_age_z, codes.NO_UNITS))
    items.append(_text(codes.BONE_AGE_REFERENCE, f.bone_age_reference))
    return items


def _sex_items(f: Findings) -> list:
    items = []
    if f.sex in ("M", "F"):
        items.append(_code(codes.SUBJECT_SEX, codes.MALE if f.sex == "M" else codes.FEMALE))
        items.append(_text(codes.SEX_SOURCE, f.sex_source or "unknown"))
    if f.male_probability is not None:
        items.append(_num(codes.MALE_PROBABILITY, f.male_probability, codes.NO_UNITS))
    if f.sex_warning:
        items.append(_text(codes.SEX_WARNING, f.sex_warning))
    return items


def _ranking(f: Findings) -> hd.sr.ContainerContentItem:
    items: list = [_code(codes.NO_CLOSE_MATCH, codes.YES if f.no_close_match else codes.NO)]
    if f.in_gallery_probability is not None:
        items.append(_num(codes.IN_GALLERY, f.in_gallery_probability, codes.NO_UNITS))
    for d in f.disorders:
        candidate = [_num(codes.RANK, d.rank, codes.NO_UNITS), _text(codes.DISORDER_ID, d.disorder_id), _text(codes.DISORDER_NAME, d.name)]
        if d.gene:
            candidate.append(_text(codes.GENE, d.gene))
        if d.score is not None:
            candidate.append(_num(codes.SCORE, d.score, codes.NO_UNITS))
        if d.probability is not None:
            candidate.append(_num(codes.PROBABILITY, d.probability, codes.NO_UNITS))
        items.append(_container(codes.CANDIDATE, candidate))
    return _container(codes.DIFFERENTIAL, items)


def report_content(findings: Findings, film: pydicom.Dataset) -> hd.sr.ContainerContentItem:
    """The SR's content tree (root container) for `findings` read from `film`."""
    items: list = [
        _text(codes.NOTICE, RESEARCH_NOTICE),
        _text(codes.ALGORITHM_NAME, findings.model_name),
        _text(codes.ALGORITHM_VERSION, findings.model_version),
        hd.sr.ImageContentItem(
            name=codes.SOURCE_IMAGE,
            referenced_sop_class_uid=film.SOPClassUID,
            referenced_sop_instance_uid=film.SOPInstanceUID,
            relationship_type=CONTAINS,
        ),
        _container(codes.FINDINGS, _bone_age_items(findings) + _sex_items(findings)),
    ]
    if findings.bone_z:
        items.append(_container(codes.BONE_PROFILE, [_num(codes.bone_z(b), z, codes.NO_UNITS) for b, z in findings.bone_z.items()]))
    items.append(_ranking(findings))
    root = hd.sr.ContainerContentItem(name=codes.REPORT_TITLE)
    root.ContentSequence = hd.sr.ContentSequence(items)
    return root


def structured_report(findings: Findings, film: pydicom.Dataset, instance_number: int = 1) -> hd.sr.ComprehensiveSR:
    """A Comprehensive SR in `film`'s study and patient (a new series), complete but not verified."""
    sr = hd.sr.ComprehensiveSR(
        evidence=[film],
        content=report_content(findings, film),
        series_instance_uid=hd.UID(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
    sr.SeriesDescription = SR_SERIES_DESCRIPTION
    coding = pydicom.Dataset()
    coding.CodingSchemeDesignator = codes.SCHEME
    coding.CodingSchemeName = codes.SCHEME_NAME
    sr.CodingSchemeIdentificationSequence = [coding]
    return sr
