"""Bone-age deviation as a z-score: (bone age - chronological age) / SD(age, sex).

The SD comes from a published reference table in YAML. The bundled default is the Brush
Foundation table behind the Greulich & Pyle standard (`references/brush_greulich_pyle.yaml`,
as printed in Gaskin et al. 2011, Tables 1-2); its `provenance` says how it was checked. A
hospital can supply its own population's table instead. The result always names the table
it used, and says so when the age is outside its range: a z-score is never extrapolated,
because the SDs change steeply at the ends of childhood.

File format::

    name: Greulich & Pyle (Brush Foundation) skeletal-age SDs
    citation: Greulich WW, Pyle SI. Radiographic Atlas of Skeletal Development of the Hand
      and Wrist, 2nd ed. Stanford University Press, 1959.
    provenance: how the values were checked (optional)
    boys:   [[age_months, sd_months], ...]   # ascending ages
    girls:  [[age_months, sd_months], ...]
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from matcher.errors import Bone2GeneError

BUNDLED_REFERENCE = Path(__file__).resolve().parent / "references" / "brush_greulich_pyle.yaml"


class BoneAgeReferenceError(Bone2GeneError, ValueError):
    """A reference table that cannot be used; the message says what to fix."""


class BoneAgeReference(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    citation: str = Field(min_length=1)
    provenance: str | None = None
    boys: tuple[tuple[float, float], ...] = Field(min_length=2)
    girls: tuple[tuple[float, float], ...] = Field(min_length=2)

    @field_validator("boys", "girls")
    @classmethod
    def _ascending_positive(cls, rows: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        ages = [a for a, _ in rows]
        if any(b <= a for a, b in zip(ages, ages[1:], strict=False)):
            raise ValueError("ages must be strictly ascending")
        if any(sd <= 0 for _, sd in rows) or any(a < 0 for a in ages):
            raise ValueError("ages must be >= 0 and SDs > 0 (months)")
        return rows

    def sd_months(self, sex: str, age_months: float) -> float | None:
        """SD at this age (linear between table ages); None outside the table's range."""
        rows = self.boys if sex == "M" else self.girls
        ages, sds = np.array(rows).T
        if not ages[0] <= age_months <= ages[-1]:
            return None
        return float(np.interp(age_months, ages, sds))


def load_reference(path: Path) -> BoneAgeReference:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BoneAgeReferenceError(f"cannot read the bone-age reference {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise BoneAgeReferenceError(f"{path}: expected a mapping with name, citation, boys and girls")
    try:
        return BoneAgeReference.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise BoneAgeReferenceError(f"{path}: {problems}") from exc


@lru_cache(maxsize=1)
def bundled_reference() -> BoneAgeReference:
    """The default table, read once per process."""
    return load_reference(BUNDLED_REFERENCE)


def reference_or_bundled(path: Path | None) -> BoneAgeReference:
    """The user's table when one is named (`--ba-reference`), else the bundled one."""
    return load_reference(path) if path else bundled_reference()


def z_score(
    reference: BoneAgeReference | None, sex: str | None, age_months: float | None, deviation_months: float | None
) -> tuple[float | None, str]:
    """The z-score and a note that says which table gave it, or why there is none."""
    if reference is None:
        return None, "no bone-age SD reference configured (see --ba-reference); deviation given in months only"
    if sex not in ("M", "F") or age_months is None or deviation_months is None:
        return None, "a z-score needs sex and chronological age"
    sd = reference.sd_months(sex, age_months)
    if sd is None:
        return None, f"age {age_months:.0f} months is outside the range of {reference.name}"
    return deviation_months / sd, f"{reference.name} (SD {sd:.1f} months at this age); {reference.citation}"
