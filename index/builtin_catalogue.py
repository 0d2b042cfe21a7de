"""The built-in clinical catalogue: the disorders every new gallery starts knowing.

`builtin_catalogue.yaml` holds each disorder's identity (name, genes, OMIM/ORPHA/MONDO ids,
Nosology group, inheritance, hand signs). The gallery seeds its catalogue from it, with the HPO
annotations of each entry's OMIM (else ORPHA) record; the phantom generator reads the same
entries for the names and genes of the disorders it draws, so the two can never disagree.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from index.catalogue import Disorder

if TYPE_CHECKING:  # the phantom generator reads the entries without loading the gallery or the ontology
    from index.store import Gallery


class Nosology(BaseModel):
    """Where the Nosology of Genetic Skeletal Disorders files a disorder, in which revision."""

    model_config = ConfigDict(extra="forbid")
    group: int = Field(ge=1, le=42)
    revision: int = 2023
    row: str | None = None  # e.g. "NOS 01-0010"


class CatalogueEntry(BaseModel):
    """One disorder's clinical identity as written in `builtin_catalogue.yaml`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$")
    name: str
    category: Literal["control", "skeletal_dysplasia", "growth_disorder_non_nosology"] = "skeletal_dysplasia"
    genes: list[str] = Field(default_factory=list, description="genes and loci, in the order patients are drawn from them")
    omim: str | None = None
    orpha: str | None = None
    mondo: str | None = None
    nosology: Nosology | None = None
    inheritance: str | None = None
    signs: str = ""

    def gene_symbols(self) -> list[str]:
        """The genes as HGNC symbols: loci such as "H19/IGF2 ICR1" or "UPD7" are not genes."""
        return [g for g in self.genes if g.replace("-", "").isalnum() and g.upper() == g and not g.startswith("UPD")]

    def to_disorder(self) -> Disorder:
        """The gallery's record, annotated with the ontology's HPO terms for its OMIM (else ORPHA) entry."""
        from index.hpo import disease_terms

        return Disorder(
            id=self.id,
            name=self.name,
            category=self.category,
            genes=self.gene_symbols(),
            omim=self.omim,
            orpha=self.orpha,
            mondo=self.mondo,
            nosology_group=self.nosology.group if self.nosology else None,
            nosology_revision=self.nosology.revision if self.nosology else None,
            phenotypes=[t.id for t in disease_terms(self.omim, self.orpha)],
        )


@cache
def builtin_entries() -> tuple[CatalogueEntry, ...]:
    """The entries of the bundled catalogue file, in file order."""
    text = resources.files("index").joinpath("builtin_catalogue.yaml").read_text(encoding="utf-8")
    return tuple(CatalogueEntry.model_validate(entry) for entry in yaml.safe_load(text))


def builtin_disorders() -> list[Disorder]:
    return [entry.to_disorder() for entry in builtin_entries()]


def seed_catalogue(gallery: Gallery) -> int:
    """Add the built-in disorders the gallery lacks; returns how many were added."""
    existing = {d.id for d in gallery.disorders()}
    missing = [d for d in builtin_disorders() if d.id not in existing]
    return gallery.add_disorders(missing) if missing else 0
