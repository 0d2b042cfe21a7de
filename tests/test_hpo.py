"""The offline HPO: terms, replacements for obsolete ones, disease annotations, Resnik/funSimAvg similarity."""

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
    with pytest.raises(
        PhenotypeError, match=r"HP:0000057 \(Clitoromegaly\) is obsolete in the HPO; use HP:0008665 \(Clitoral hypertrophy\)"
    ):
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


def test_catalogue_stores_disorder_phenotypes_and_older_galleries_gain_the_table(tmp_path) -> None:
    import sqlite3

    from index.builtin_catalogue import seed_catalogue
    from index.catalogue import Disorder
    from index.store import Gallery

    with Gallery.create(tmp_path / "g", "model", 8) as gallery:
        seed_catalogue(gallery)
        achondroplasia = gallery.disorder("achondroplasia")
        assert achondroplasia == {d.id: d for d in gallery.disorders()}["achondroplasia"]
        assert gallery.disorder("no_such_disorder") is None and gallery.disorder(None) is None
        assert "HP:0004060" in achondroplasia.phenotypes and len(achondroplasia.phenotypes) == len(hpo.disease_terms(omim="100800"))
        novel = Disorder(id="novel", name="Novel dysplasia, XYZ1-related").with_phenotypes(add=["HP:0004322", "0001156"])
        gallery.add_disorders([novel])
        with pytest.raises(PhenotypeError, match="obsolete"):
            gallery.add_disorders([Disorder(id="bad", name="Bad entry", phenotypes=["HP:0000057"])])
        stored = {d.id: d for d in gallery.disorders()}
        assert stored["novel"].phenotypes == ["HP:0001156", "HP:0004322"] and "bad" not in stored
        edited = stored["novel"].with_phenotypes(remove=["HP:0001156"])
        gallery.add_disorders([edited], replace=True)
        assert gallery.disorder("novel").phenotypes == ["HP:0004322"]
        with pytest.raises(ValueError, match="not annotated to novel"):
            edited.with_phenotypes(remove=["HP:0001156"])
    db = sqlite3.connect(tmp_path / "g" / "gallery.sqlite")  # a gallery written before phenotypes existed
    db.execute("DROP TABLE disorder_phenotypes")
    db.commit()
    db.close()
    with Gallery.open(tmp_path / "g") as gallery:
        assert all(d.phenotypes == [] for d in gallery.disorders()) and len(gallery.disorders()) == 26
        gallery.add_disorders([gallery.disorder("novel").with_phenotypes(add=["HP:0004322"])], replace=True)
        assert gallery.disorder("novel").phenotypes == ["HP:0004322"]


def test_curators_edit_phenotypes_from_the_command_line(bone2gene, tmp_path) -> None:
    from index.store import Gallery

    Gallery.create(tmp_path / "g", "model", 8).close()
    added = bone2gene(
        "disorders", "add", "--gallery", tmp_path / "g", "--id", "ach", "--name", "Achondroplasia, FGFR3-related", "--omim", "100800"
    )
    assert added.returncode == 0 and "47 HPO terms" in added.stdout, added.stderr
    shown = bone2gene("disorders", "phenotypes", "--gallery", tmp_path / "g", "ach", "--remove", "HP:0004060", "--add", "HP:0001156")
    assert shown.returncode == 0 and "HP:0004060" not in shown.stdout and "HP:0001156  Brachydactyly" in shown.stdout
    bad = bone2gene("disorders", "phenotypes", "--gallery", tmp_path / "g", "ach", "--add", "HP:0000057")
    assert bad.returncode == 2 and "use HP:0008665" in bad.stderr
    missing = bone2gene("disorders", "phenotypes", "--gallery", tmp_path / "g", "nope")
    assert missing.returncode == 2 and "not in the catalogue" in missing.stderr
    listed = bone2gene("disorders", "list", "--gallery", tmp_path / "g", "--json")
    assert '"HP:0001156"' in listed.stdout


def test_cases_keep_observed_and_excluded_terms_and_bad_ones_write_nothing(tmp_path) -> None:
    import numpy as np

    from index.builtin_catalogue import seed_catalogue
    from index.store import Gallery, NewCase

    rng = np.random.default_rng(0)

    def case(case_id: str, **terms) -> NewCase:
        vector = rng.normal(size=8)
        return NewCase(vector / np.linalg.norm(vector), "F", 60.0, "achondroplasia", case_id=case_id, **terms)

    with Gallery.create(tmp_path / "g", "model", 8) as gallery:
        seed_catalogue(gallery)
        gallery.add_cases([case("a", phenotypes=["HP:0004322", "0004060"], excluded_phenotypes=["HP:0001156"]), case("b")], "model")
        table = gallery.cases().set_index("case_id")
        assert table.at["a", "hpo"] == "HP:0004060;HP:0004322" and table.at["a", "hpo_excluded"] == "HP:0001156"
        assert hpo.split_terms(table.at["b", "hpo"]) == []  # no terms recorded: a missing value
        with pytest.raises(PhenotypeError, match=r"case c: HP:0000057 \(.+\) is obsolete"):
            gallery.add_cases([case("d"), case("c", phenotypes=["HP:0000057"])], "model")
        with pytest.raises(PhenotypeError, match="both observed and excluded"):
            gallery.add_cases([case("e", phenotypes=["HP:0004322"], excluded_phenotypes=["HP:0004322"])], "model")
        assert sorted(gallery.cases()["case_id"]) == ["a", "b"]  # neither batch wrote anything
        gallery.remove_case("a")
        assert gallery.db.query("SELECT COUNT(*) FROM case_phenotypes")[0][0] == 0
    assert hpo.split_terms("HP:0004322; HP:0001156,HP:0004060 ") == ["HP:0004322", "HP:0001156", "HP:0004060"]
    assert hpo.split_terms(None) == [] and hpo.split_terms(float("nan")) == []
