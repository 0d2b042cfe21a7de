"""The disorder catalogue's record (DESIGN.md section 2).

Names follow the Nosology's dyadic "phenotype, GENE-related" convention where a gene is
known; the Nosology group is stored with its revision year, and disorders outside the
Nosology (Turner, Noonan, Silver-Russell, SGA/IUGR) carry their own category.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Category = Literal["control", "skeletal_dysplasia", "growth_disorder_non_nosology"]


class Disorder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=80, description="short id: lower case, digits, underscores")
    name: str = Field(min_length=3, max_length=300)
    category: Category = "skeletal_dysplasia"
    genes: list[str] = Field(default_factory=list)
    omim: str | None = Field(None, pattern=r"^\d{6}$")
    orpha: str | None = Field(None, pattern=r"^\d{1,7}$")
    mondo: str | None = Field(None, pattern=r"^MONDO:\d{7}$")
    nosology_group: int | None = Field(None, ge=1, le=41)
    nosology_revision: int | None = Field(None, ge=2000, le=2100)

    @field_validator("genes")
    @classmethod
    def _gene_symbols(cls, genes: list[str]) -> list[str]:
        cleaned = [g.strip().upper() for g in genes if g.strip()]
        for gene in cleaned:
            if not gene.replace("-", "").replace(".", "").isalnum() or len(gene) > 20:
                raise ValueError(f"{gene!r} does not look like an HGNC gene symbol")
        return sorted(set(cleaned))

    @model_validator(mode="after")
    def _group_needs_revision(self) -> Disorder:
        if self.nosology_group is not None and self.nosology_revision is None:
            raise ValueError("a Nosology group needs its revision year (e.g. 2023)")
        return self
