"""The disorder catalogue's record (DESIGN.md section 2).

Names follow the Nosology's dyadic "phenotype, GENE-related" convention where a gene is
known; the Nosology group is stored with its revision year, and disorders outside the
Nosology (Turner, Noonan, Silver-Russell, SGA/IUGR) carry their own category. Phenotypes
are the disorder's HPO annotations (filled from the ontology's OMIM/ORPHA annotations,
`index.hpo`, and editable by curators).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
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
    phenotypes: list[str] = Field(default_factory=list, description="HPO ids annotated to the disorder (index.hpo checks them on writing)")

    @field_validator("phenotypes")
    @classmethod
    def _hpo_ids(cls, terms: list[str]) -> list[str]:
        cleaned = []
        for term in terms:
            text = str(term).strip().upper()
            if not re.fullmatch(r"HP:\d{7}", text):
                raise ValueError(f"{term!r} is not an HPO id; write it as HP: and seven digits, e.g. HP:0004322")
            cleaned.append(text)
        return sorted(set(cleaned))

    @field_validator("genes")
    @classmethod
    def _gene_symbols(cls, genes: list[str]) -> list[str]:
        cleaned = [g.strip().upper() for g in genes if g.strip()]
        for gene in cleaned:
            if not gene.replace("-", "").replace(".", "").isalnum() or len(gene) > 20:
                raise ValueError(f"{gene!r} does not look like an HGNC gene symbol")
        return sorted(set(cleaned))

    def with_phenotypes(self, add: Iterable[str] = (), remove: Iterable[str] = (), from_ontology: bool = False) -> Disorder:
        """A copy with HPO terms added and removed; `from_ontology` first replaces them with the
        ontology's annotations of the disorder's OMIM (else ORPHA) entry."""
        from index.hpo import disease_terms, resolve_terms

        terms = {t.id for t in disease_terms(self.omim, self.orpha)} if from_ontology else set(self.phenotypes)
        terms |= {t.id for t in resolve_terms(add)}
        dropped = {t.strip().upper() for t in remove}
        unknown = sorted(dropped - terms)
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not annotated to {self.id}; its terms are listed by `bone2gene disorders list --json`")
        return self.model_copy(update={"phenotypes": sorted(terms - dropped)})

    @model_validator(mode="after")
    def _group_needs_revision(self) -> Disorder:
        if self.nosology_group is not None and self.nosology_revision is None:
            raise ValueError("a Nosology group needs its revision year (e.g. 2023)")
        return self
