"""What the node says about one film: the facts both DICOM answers carry, gathered once.

The Structured Report encodes these as coded content items and the Secondary Capture burns the
same lines into a panel, so a viewer of either sees the same findings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from api.version import VERSION
from index.query import QueryResult
from matcher.analysis import Analysis
from matcher.checkpoint import ModelCard
from matcher.hand_scheme import BONE_NAMES

RESEARCH_NOTICE = (
    "Research use only, not a diagnosis: a similarity ranking of synthetic and curated cases to support a "
    "clinical geneticist, who decides. Confirm any disorder clinically and genetically."
)
NO_CLOSE_MATCH = "No close match: the film lies away from every disorder in the gallery; the ranking below is weak evidence."


@dataclass(frozen=True)
class RankedDisorder:
    rank: int
    disorder_id: str
    name: str
    gene: str | None
    score: float | None
    probability: float | None


@dataclass(frozen=True)
class Findings:
    """Everything an answer reports about one accepted film."""

    model_name: str
    model_version: str
    bone_age_months: float
    age_months: float | None
    bone_age_deviation_months: float | None
    bone_age_z: float | None
    bone_age_reference: str
    sex: str | None
    sex_source: str | None
    male_probability: float | None
    sex_warning: str | None
    disorders: list[RankedDisorder]
    no_close_match: bool
    in_gallery_probability: float | None
    bone_z: dict[str, float] = field(default_factory=dict)  # measured and scored bones only

    def lines(self) -> list[str]:
        """The findings as short lines of text, in the order a reader wants them."""
        out = [f"Bone age {self.bone_age_months / 12:.1f} y ({self.bone_age_months:.0f} months)"]
        if self.age_months is not None and self.bone_age_deviation_months is not None:
            out.append(f"  age {self.age_months / 12:.1f} y; bone age {self.bone_age_deviation_months:+.0f} months vs age")
        if self.bone_age_z is not None:
            out.append(f"  z {self.bone_age_z:+.2f} ({self.bone_age_reference.split(':')[0].split(' (SD')[0]})")
        if self.male_probability is not None:
            out.append(f"Sex {self.sex or '?'} ({self.sex_source}); model P(male) {self.male_probability:.2f}")
        if self.sex_warning:
            out.append(f"WARNING: {self.sex_warning}")
        outside = [f"{bone} {z:+.1f}" for bone, z in self.bone_z.items() if abs(z) > 2]
        if self.bone_z:
            out.append(f"Bones beyond +-2 SD: {', '.join(outside) or 'none'} ({len(self.bone_z)} of 19 scored)")
        if self.no_close_match:
            out.append(NO_CLOSE_MATCH)
        for d in self.disorders:
            probability = "" if d.probability is None else f" p={d.probability:.2f}"
            score = "" if d.score is None else f" score {d.score:.3f}"
            out.append(f"{d.rank}. {d.name}{f' ({d.gene})' if d.gene else ''}{probability}{score}")
        out.append(f"{self.model_name} {self.model_version}")
        return out


def gather_findings(analysis: Analysis, result: QueryResult, card: ModelCard, gene_of: dict[str, str | None], top: int) -> Findings:
    """The findings of an accepted `analysis` and its ranking `result` (`gene_of`: each disorder's gene)."""
    if not analysis.accepted or analysis.bone_age_months is None:
        raise ValueError("only an accepted film has findings to report")
    disorders = [
        RankedDisorder(d.rank, d.label, d.name or d.label, gene_of.get(d.label), d.score, d.probability) for d in result.disorders[:top]
    ]
    bone_z = {}
    if analysis.hand is not None:
        bone_z = {name: round(float(z), 2) for name, z in zip(BONE_NAMES, analysis.hand.z, strict=True) if np.isfinite(z)}
    return Findings(
        model_name="Bone2Gene matcher",
        model_version=f"{VERSION} model {card.fingerprint[:12]}",
        bone_age_months=round(float(analysis.bone_age_months), 2),
        age_months=analysis.age_months,
        bone_age_deviation_months=None if analysis.bone_age_deviation_months is None else round(analysis.bone_age_deviation_months, 2),
        bone_age_z=None if analysis.bone_age_z is None else round(analysis.bone_age_z, 2),
        bone_age_reference=analysis.bone_age_z_note or "",
        sex=analysis.sex,
        sex_source=analysis.sex_source,
        male_probability=analysis.male_probability,
        sex_warning=analysis.sex_warning,
        disorders=disorders,
        no_close_match=result.no_close_match,
        in_gallery_probability=result.in_gallery_probability,
        bone_z=bone_z,
    )
