"""Which cases a query, a listing or a map considers: one model for every way of saying it.

The API's query fields, the CLI's flags and the explore string
('disorder=achondroplasia,hypochondroplasia;sex=F;age=60-120;source=site-a') all become a
`Filters`, so sex, ages and lists are checked in one place.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from matcher.errors import Bone2GeneError

FILTER_KEYS = ("disorder", "gene", "sex", "age", "source")


class FilterError(Bone2GeneError, ValueError):
    """A filter that cannot be understood; the message shows the expected form."""


def _explain(error: dict) -> str:
    field = ".".join(map(str, error["loc"])) or "filter"
    if field == "sex":
        return f"sex must be M or F, not {error.get('input')!r}"
    return f"{field}: {error['msg']}"


class Filters(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sex: Literal["M", "F"] | None = None
    age_min_months: float | None = Field(None, ge=0, le=1200)
    age_max_months: float | None = Field(None, ge=0, le=1200)
    source: str | None = None
    disorders: tuple[str, ...] = ()
    genes: tuple[str, ...] = ()

    @field_validator("sex", mode="before")
    @classmethod
    def _upper_sex(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("genes", mode="before")
    @classmethod
    def _upper_genes(cls, value: object) -> object:
        return tuple(str(g).strip().upper() for g in value) if isinstance(value, list | tuple) else value

    @model_validator(mode="after")
    def _ordered_ages(self) -> Filters:
        if self.age_min_months is not None and self.age_max_months is not None and self.age_min_months > self.age_max_months:
            raise ValueError(f"the age range is empty: minimum {self.age_min_months} > maximum {self.age_max_months} months")
        return self

    @classmethod
    def of(cls, **values: object) -> Filters:
        """Like the constructor, but a bad value is a `FilterError` naming the field (for callers outside pydantic)."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise FilterError("; ".join(_explain(e) for e in exc.errors())) from None

    @classmethod
    def parse(cls, text: str | None) -> Filters:
        """'disorder=a,b;gene=X;sex=F;age=60-120;source=site-a' -> Filters."""
        values: dict[str, object] = {}
        for part in (text or "").split(";"):
            if not part.strip():
                continue
            if "=" not in part:
                raise FilterError(f"filter part {part!r} must look like key=value (keys: {', '.join(FILTER_KEYS)})")
            key, value = (s.strip() for s in part.split("=", 1))
            items = tuple(v.strip() for v in value.split(",") if v.strip())
            if key in ("disorder", "gene"):
                values[f"{key}s"] = items
            elif key == "age":
                try:
                    values["age_min_months"], values["age_max_months"] = (float(v) for v in value.split("-", 1))
                except ValueError:
                    raise FilterError(f"age must be a range in months like 60-120, not {value!r}") from None
            elif key in ("sex", "source"):
                values[key] = value
            else:
                raise FilterError(f"unknown filter key {key!r}; use {', '.join(FILTER_KEYS)}")
        return cls.of(**values)

    def active(self) -> bool:
        return bool(self.to_dict())

    def to_dict(self) -> dict:
        """The filters that are set (lists for tuples): what a stored map records."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_dump().items() if v not in (None, ())}

    @classmethod
    def from_dict(cls, data: dict) -> Filters | None:
        return cls.of(**data) if data else None

    def apply(self, table: pd.DataFrame) -> pd.DataFrame:
        """The rows of a `Gallery.cases()` table these filters keep."""
        keep = pd.Series(True, index=table.index)
        if self.sex:
            keep &= table["sex"] == self.sex
        if self.age_min_months is not None:
            keep &= table["age_months"] >= self.age_min_months
        if self.age_max_months is not None:
            keep &= table["age_months"] <= self.age_max_months
        if self.source:
            keep &= table["source"] == self.source
        if self.disorders:
            keep &= table["disorder"].isin(self.disorders)
        if self.genes:
            keep &= table["gene"].isin(self.genes)
        return table[keep]
