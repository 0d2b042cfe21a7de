"""The built-in disorders as catalogue entries: a new gallery starts knowing every disorder
the synthetic cohort can draw (PHENOTYPES.md section 2; each spec carries its catalogue fields),
with the HPO annotations of its OMIM (else ORPHA) entry."""

from __future__ import annotations

from index.catalogue import Disorder
from index.hpo import disease_terms
from index.store import Gallery
from training.synth.spec import builtin_specs


def _gene_symbols(genes: list[str]) -> list[str]:
    """Loci such as "H19/IGF2 ICR1" or "UPD7" are not gene symbols."""
    return [g for g in genes if g.replace("-", "").isalnum() and g.upper() == g and not g.startswith("UPD")]


def builtin_disorders() -> list[Disorder]:
    return [
        Disorder(
            id=s.id,
            name=s.name,
            category=s.category,
            genes=_gene_symbols(s.genes),
            omim=s.omim,
            orpha=s.orpha,
            mondo=s.mondo,
            nosology_group=s.nosology.group if s.nosology else None,
            nosology_revision=s.nosology.revision if s.nosology else None,
            phenotypes=[t.id for t in disease_terms(s.omim, s.orpha)],
        )
        for s in builtin_specs()
    ]


def seed_catalogue(gallery: Gallery) -> int:
    """Add the built-in disorders the gallery lacks; returns how many were added."""
    entries = builtin_disorders()
    existing = {d.id for d in gallery.disorders()}
    missing = [d for d in entries if d.id not in existing]
    return gallery.add_disorders(missing) if missing else 0
