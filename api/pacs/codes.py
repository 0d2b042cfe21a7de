"""The coded concepts of our Structured Report: DICOM (DCM), LOINC, SNOMED and UCUM where the
standard has one, and a private scheme (`99B2G`, the 99 prefix DICOM keeps for local schemes)
for what it has not: bone age as this model reads it, a disorder candidate, the pattern profile."""

from __future__ import annotations

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

SCHEME = "99B2G"
SCHEME_NAME = "Bone2Gene matcher concepts"


def _local(value: str, meaning: str) -> Code:
    return Code(value, SCHEME, meaning)


REPORT_TITLE = codes.LN.XRayReport
SOURCE_IMAGE = codes.DCM.SourceImage
ALGORITHM_NAME = codes.DCM.AlgorithmName
ALGORITHM_VERSION = codes.DCM.AlgorithmVersion
NOTICE = _local("NOTICE", "Intended use")
FINDINGS = codes.LN.Findings
BONE_AGE = _local("BA", "Bone age")
CHRONOLOGICAL_AGE = _local("CA", "Chronological age")
BONE_AGE_DEVIATION = _local("BADEV", "Bone age minus chronological age")
BONE_AGE_Z = _local("BAZ", "Bone age z-score")
BONE_AGE_REFERENCE = _local("BAREF", "Bone age reference")
SUBJECT_SEX = codes.DCM.SubjectSex
SEX_SOURCE = _local("SEXSRC", "Source of the sex used")
MALE_PROBABILITY = _local("PMALE", "Model probability of male sex")
SEX_WARNING = _local("SEXWARN", "Sex mismatch warning")
BONE_PROFILE = _local("PROFILE", "Tubular bone length pattern profile")
DIFFERENTIAL = codes.DCM.DifferentialDiagnosisImpression
CANDIDATE = _local("CAND", "Candidate disorder")
RANK = _local("RANK", "Rank")
DISORDER_ID = _local("DISID", "Disorder identifier")
DISORDER_NAME = _local("DISNAME", "Disorder name")
GENE = _local("GENE", "Gene")
SCORE = _local("SCORE", "Similarity score")
PROBABILITY = codes.DCM.Probability
NO_CLOSE_MATCH = _local("NOCLOSE", "No close match in the gallery")
IN_GALLERY = _local("INGAL", "Probability that the disorder is in the gallery")
YES, NO = codes.SCT.Yes, codes.SCT.No
MALE, FEMALE = codes.DCM.Male, codes.DCM.Female
MONTHS, NO_UNITS, PERCENT = codes.UCUM.Month, codes.UCUM.NoUnits, codes.UCUM.Percent


def bone_z(bone: str) -> Code:
    """The length z-score of one of the 19 tubular bones (MC1 ... DP5)."""
    return _local(f"Z-{bone}", f"{bone} length z-score for age and sex")
