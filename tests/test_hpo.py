"""The offline HPO: terms, replacements for obsolete ones, disease annotations, Resnik/BMA similarity."""

from __future__ import annotations

import pytest

from index import hpo
from index.hpo import PhenotypeError


def test_terms_resolve_and_bad_ids_say_what_to_do() -> None:
    assert hpo.resolve_term("HP:0004322") == hpo.Term("HP:0004322", "Short stature")
    assert hpo.resolve_term(" hp_0004322 ").id == "HP:0004322" and hpo.resolve_term("0004322").id == "HP:0004322"
    with pytest.raises(PhenotypeError, match="not an HPO id; write it as HP: and seven digits"):
        hpo.resolve_term("short stature")
    with pytest.raises(PhenotypeError, match="HP:9999999 is not in the HPO"):
        hpo.resolve_term("HP:9999999")
    with pytest.raises(PhenotypeError, match=r"HP:0000057 \(.+\) is obsolete in the HPO; use HP:0008665 \("):
        hpo.resolve_term("HP:0000057")
    assert [t.id for t in hpo.resolve_terms(["HP:0004322", "HP:0001156", "HP:0004322"])] == ["HP:0004322", "HP:0001156"]
    assert hpo.release() in hpo.HPO_PACKAGE


def test_disease_annotations_and_similarity_rank_the_right_disorder_first() -> None:
    achondroplasia = hpo.disease_terms(omim="100800")
    names = {t.name for t in achondroplasia}
    assert {"Rhizomelia", "Trident hand", "Brachydactyly"} <= names
    assert hpo.disease_terms(orpha="15") and hpo.disease_terms(omim="999999") == []
    query = hpo.resolve_terms(["HP:0008905", "HP:0004060", "HP:0004322"])  # rhizomelia, trident hand, short stature
    cleidocranial = hpo.disease_terms(omim="119600")
    own, other = hpo.similarity(query, achondroplasia), hpo.similarity(query, cleidocranial)
    assert own is not None and other is not None and own > other > 0
    assert hpo.similarity([], achondroplasia) is None and hpo.similarity(query, []) is None


def test_search_finds_current_terms_by_name() -> None:
    found = hpo.search("brachydactyly", limit=5)
    assert found and all("brachydactyly" in t.name.lower() for t in found) and len(found) <= 5
    assert found[0].name == "Brachydactyly" and hpo.search("b") == []
