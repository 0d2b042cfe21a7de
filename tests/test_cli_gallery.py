"""`bone2gene gallery|disorders|query` as a user runs them (real subprocesses, bundled model)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

DISORDERS = ("unaffected", "achondroplasia", "brachydactyly_e", "cleidocranial_dysplasia")


def run(bone2gene, *args: object, ok: bool = True) -> subprocess.CompletedProcess:
    result = bone2gene(*args)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def cohort(render_cohort) -> Path:
    out, _ = render_cohort(n=32, seed=5, size=384, disorders=DISORDERS)
    return out / "manifest.csv"


@pytest.fixture(scope="module")
def gallery(bone2gene, cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("g") / "gallery"
    assert "25 disorders in the catalogue" in run(bone2gene, "gallery", "init", path).stdout
    added = run(bone2gene, "gallery", "add", path, cohort)
    assert "added" in added.stdout and "/32" in added.stderr  # progress shown
    return path


def test_add_is_idempotent_and_stats_count_cases(bone2gene, gallery: Path, cohort: Path) -> None:
    again = run(bone2gene, "gallery", "add", gallery, cohort)
    assert "added 0 case(s)" in again.stdout
    stats = json.loads(run(bone2gene, "gallery", "stats", gallery, "--json").stdout)
    accepted = stats["cases"]
    assert 28 <= accepted <= 32 and stats["index_vectors"] == accepted and set(stats["by_disorder"]) <= set(DISORDERS)
    listed = json.loads(run(bone2gene, "gallery", "list", gallery, "--disorder", "achondroplasia", "--sex", "F", "--json").stdout)
    assert listed and all(r["disorder"] == "achondroplasia" and r["sex"] == "F" for r in listed)
    assert "image_sha256" not in listed[0]  # no storage internals in listings


def test_manifest_hpo_columns_reach_the_cases_and_a_bad_term_stops_the_add_first(
    bone2gene, gallery: Path, cohort: Path, tmp_path: Path
) -> None:
    table = pd.read_csv(cohort).head(2)
    table["image"] = [str(cohort.parent / p) for p in table["image"]]
    table["case_id"] = ["hpo-1", "hpo-2"]
    table["hpo"] = ["HP:0004322; HP:0004060", None]
    table["hpo_excluded"] = ["HP:0001156", None]
    bad = table.assign(hpo=["HP:0004322", "HP:0000057"])
    bad.to_csv(tmp_path / "bad.csv", index=False)
    refused = run(bone2gene, "gallery", "add", gallery, tmp_path / "bad.csv", ok=False)
    assert refused.returncode == 2 and "case hpo-2: HP:0000057" in refused.stderr and "use HP:0008665" in refused.stderr
    listed = {r["case_id"]: r for r in json.loads(run(bone2gene, "gallery", "list", gallery, "--json").stdout)}
    assert "hpo-1" not in listed  # checked before anything was embedded or added
    table.to_csv(tmp_path / "good.csv", index=False)
    assert "added 2 case(s)" in run(bone2gene, "gallery", "add", gallery, tmp_path / "good.csv").stdout
    listed = {r["case_id"]: r for r in json.loads(run(bone2gene, "gallery", "list", gallery, "--json").stdout)}
    assert listed["hpo-1"]["hpo"] == "HP:0004060;HP:0004322" and listed["hpo-1"]["hpo_excluded"] == "HP:0001156"
    assert listed["hpo-2"]["hpo"] is None
    for case_id in ("hpo-1", "hpo-2"):  # leave the module's gallery as the other tests expect it
        run(bone2gene, "gallery", "remove", gallery, case_id)


def test_query_json_ranks_disorders_with_evidence(bone2gene, gallery: Path, cohort: Path) -> None:
    table = pd.read_csv(cohort)
    accepted = {r["case_id"] for r in json.loads(run(bone2gene, "gallery", "list", gallery, "--json").stdout)}
    row = table[(table["disorder"] == "achondroplasia") & table["case_id"].isin(accepted)].iloc[0]
    result = run(
        bone2gene,
        "query",
        cohort.parent / row["image"],
        "--sex",
        row["sex"],
        "--age-months",
        row["age_months"],
        "--gallery",
        gallery,
        "--top",
        "3",
        "--json",
    )
    record = json.loads(result.stdout)
    assert {"disorders", "cases", "no_close_match", "genes", "bone_age_months"} <= set(record)
    assert len(record["disorders"]) == len(DISORDERS)
    first = record["disorders"][0]
    assert {"disorder", "score", "evidence", "rank", "cases_in_gallery"} <= set(first) and first["evidence"]
    assert len(record["cases"]) == 3 and record["cases"][0]["similarity"] >= record["cases"][-1]["similarity"]
    args = ("query", cohort.parent / row["image"], "--sex", row["sex"], "--gallery", gallery, "--top", "3", "--json")
    gestalt = json.loads(run(bone2gene, *args, "--ranking-rule", "nearest").stdout)
    assert gestalt["disorders"][0]["score"] == pytest.approx(gestalt["cases"][0]["similarity"], abs=1e-4)
    nearest = {d["disorder"]: d["score"] for d in gestalt["disorders"]}
    # density (the default) is a mean over a disorder's cases: never above its nearest case
    assert all(d["score"] <= nearest[d["disorder"]] + 1e-4 for d in record["disorders"])
    text = run(bone2gene, "query", cohort.parent / row["image"], "--sex", row["sex"], "--gallery", gallery).stdout
    assert "not a diagnosis" in text and "rank" in text
    report = run(bone2gene, "gallery", "calibration", gallery).stdout
    assert "reliability" in report and "expected calibration error" in report


def test_terms_and_candidate_genes_join_the_image_in_the_ranking(bone2gene, gallery: Path, cohort: Path, tmp_path: Path) -> None:
    table = pd.read_csv(cohort)
    film = cohort.parent / table[table["disorder"] == "brachydactyly_e"].iloc[0]["image"]
    common = ("--sex", "F", "--gallery", gallery, "--json")
    image_only = json.loads(run(bone2gene, "query", film, *common, "--profile", tmp_path / "profile.png").stdout)
    assert (tmp_path / "profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # with the top disorders' typical profiles
    assert len(image_only["profile_z"]) == 19 and sum(z is not None for z in image_only["profile_z"]) >= 10
    # the film's measured bones are evidence of their own: without terms or genes only the image and the profile speak
    assert all(d["sources"]["profile_match"] is not None for d in image_only["disorders"])
    assert all(d["sources"]["contributions"]["phenotype"] == d["sources"]["contributions"]["gene"] == 0 for d in image_only["disorders"])
    (tmp_path / "genes.txt").write_text("FGFR3\nTTN\n")
    terms = ("--hpo", "HP:0008905,HP:0004060", "--hpo", "HP:0004322", "--genes-file", tmp_path / "genes.txt")
    combined = json.loads(run(bone2gene, "query", film, *common, *terms).stdout)
    first = combined["disorders"][0]
    assert first["disorder"] == "achondroplasia"  # rhizomelia, trident hand and FGFR3 outweigh the film
    assert set(first["sources"]["contributions"]) == {"image", "phenotype", "excluded", "gene", "profile"} and first["sources"][
        "gene_hits"
    ] == ["FGFR3"]
    assert first["sources"]["contributions"]["phenotype"] > 0 and 0 < first["sources"]["combined_probability"] < 1
    assert [d["rank"] for d in combined["disorders"]] == list(range(1, len(combined["disorders"]) + 1))
    gene = combined["genes"][0]  # the gene ranking follows the combined disorder ranking
    assert gene["gene"] == "FGFR3" and gene["sources"]["via_disorder"] == "achondroplasia" and gene["sources"]["in_candidates"] is True
    assert all(g["sources"]["in_candidates"] is False for g in combined["genes"][1:] if g.get("sources"))
    text = run(bone2gene, "query", film, "--sex", "F", "--gallery", gallery, *terms).stdout
    assert "combined P" in text and "genes in the list: FGFR3" in text
    bad = run(bone2gene, "query", film, "--gallery", gallery, "--hpo", "HP:0000057", ok=False)
    assert bad.returncode == 2 and "use HP:0008665" in bad.stderr
    clash = run(bone2gene, "query", film, "--gallery", gallery, "--hpo", "HP:0004322", "--exclude-hpo", "HP:0004322", ok=False)
    assert clash.returncode == 2 and "both observed and excluded" in clash.stderr


def test_phenopackets_round_trip_through_the_gallery_and_carry_a_ranking(bone2gene, gallery: Path, cohort: Path, tmp_path: Path) -> None:
    table = pd.read_csv(cohort)
    listed = {r["case_id"]: r for r in json.loads(run(bone2gene, "gallery", "list", gallery, "--json").stdout)}
    row = table[(table["disorder"] == "achondroplasia") & table["case_id"].isin(listed)].iloc[0]
    packet = json.loads(run(bone2gene, "gallery", "phenopacket", gallery, row["case_id"]).stdout)
    assert (
        packet["subject"]["sex"] == ("MALE" if row["sex"] == "M" else "FEMALE") and packet["metaData"]["phenopacketSchemaVersion"] == "2.0"
    )
    assert packet["interpretations"][0]["diagnosis"]["disease"]["id"] == "OMIM:100800"
    packet["id"] = "from-elsewhere"
    packet["subject"]["id"] = "pp-patient"
    packet["phenotypicFeatures"] = [{"type": {"id": "HP:0004322"}}, {"type": {"id": "HP:0001156"}, "excluded": True}]
    packet["files"] = [{"uri": (cohort.parent / row["image"]).resolve().as_uri(), "fileAttributes": {"bone_age_months": "101.5"}}]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "case.json").write_text(json.dumps(packet))
    assert "added 1 case(s)" in run(bone2gene, "gallery", "add", gallery, tmp_path / "in").stdout
    back = json.loads(run(bone2gene, "gallery", "phenopacket", gallery, "from-elsewhere").stdout)
    features = {(f["type"]["id"], f.get("excluded", False)) for f in back["phenotypicFeatures"]}
    assert features == {("HP:0004322", False), ("HP:0001156", True)} and back["subject"]["id"] == "pp-patient"
    assert back["subject"]["timeAtLastEncounter"] == packet["subject"]["timeAtLastEncounter"]
    assert back["interpretations"][0]["diagnosis"]["disease"]["id"] == "OMIM:100800"
    run(bone2gene, "gallery", "remove", gallery, "from-elsewhere")
    packet["subject"]["sex"] = "UNKNOWN_SEX"
    (tmp_path / "in" / "case.json").write_text(json.dumps(packet))
    refused = run(bone2gene, "gallery", "add", gallery, tmp_path / "in" / "case.json", ok=False)
    assert refused.returncode == 2 and "subject.sex must be MALE or FEMALE" in refused.stderr
    film = cohort.parent / row["image"]
    run(
        bone2gene,
        "query",
        film,
        "--gallery",
        gallery,
        "--hpo",
        "HP:0004322",
        "--genes",
        "FGFR3",
        "--phenopacket",
        tmp_path / "ranking.json",
    )
    ranking = json.loads((tmp_path / "ranking.json").read_text())
    assert ranking["interpretations"][0]["id"].endswith("rank-1") and "combined probability" in ranking["interpretations"][0]["summary"]
    assert ranking["phenotypicFeatures"][0]["type"] == {"id": "HP:0004322", "label": "Short stature"}


def test_several_films_of_one_patient_make_one_query(bone2gene, gallery: Path, cohort: Path, tmp_path: Path) -> None:
    table = pd.read_csv(cohort)
    film = cohort.parent / table[table["disorder"] == "achondroplasia"].iloc[0]["image"]
    other = cohort.parent / table[table["disorder"] == "achondroplasia"].iloc[1]["image"]
    common = ("--sex", "M", "--gallery", gallery, "--json")
    single = json.loads(run(bone2gene, "query", film, *common).stdout)
    twice = json.loads(run(bone2gene, "query", film, film, *common).stdout)
    assert twice["films_combined"] == 2 and len(twice["images"]) == 2
    # the mean of two identical unit vectors is the vector itself: the same ranking, the same scores
    assert [(d["disorder"], d["score"]) for d in twice["disorders"]] == [(d["disorder"], d["score"]) for d in single["disorders"]]
    pair = json.loads(run(bone2gene, "query", film, other, *common).stdout)
    assert pair["films_combined"] == 2 and [i["image"] for i in pair["images"]] == [film.name, other.name]
    junk = tmp_path / "notes.png"
    junk.write_bytes(b"not an image")
    text = run(bone2gene, "query", film, junk, "--sex", "M", "--gallery", gallery).stdout
    assert "left out: notes.png was not accepted" in text and "rank" in text
    refused = run(bone2gene, "query", film, other, "--age-months", "100", "--gallery", gallery, ok=False)
    assert refused.returncode == 2 and "--age-months" in refused.stderr


def test_curation_commands_and_their_errors(bone2gene, gallery: Path, cohort: Path, tmp_path: Path) -> None:
    case_id = json.loads(run(bone2gene, "gallery", "list", gallery, "--json").stdout)[0]["case_id"]
    run(bone2gene, "gallery", "relabel", gallery, case_id, "--disorder", "brachydactyly_e", "--gene", "pthlh")
    row = next(r for r in json.loads(run(bone2gene, "gallery", "list", gallery, "--json").stdout) if r["case_id"] == case_id)
    assert row["disorder"] == "brachydactyly_e" and row["gene"] == "PTHLH"
    bad = run(bone2gene, "gallery", "relabel", gallery, case_id, "--disorder", "nonsense", ok=False)
    assert bad.returncode == 2 and "not in the catalogue" in bad.stderr

    new = run(
        bone2gene,
        "disorders",
        "add",
        "--gallery",
        gallery,
        "--id",
        "new_syndrome",
        "--name",
        "Novel dysplasia, XYZ1-related",
        "--gene",
        "XYZ1",
    )
    assert "added new_syndrome" in new.stdout
    listed = json.loads(run(bone2gene, "disorders", "list", "--gallery", gallery, "--json").stdout)
    assert any(d["id"] == "new_syndrome" and d["genes"] == ["XYZ1"] for d in listed)
    invalid = run(bone2gene, "disorders", "add", "--gallery", gallery, "--id", "Bad Id", "--name", "x", ok=False)
    assert invalid.returncode == 2 and "--id" in invalid.stderr

    snapshot = tmp_path / "snap.tar"
    run(bone2gene, "gallery", "export", gallery, "-o", snapshot)
    run(bone2gene, "gallery", "import", snapshot, tmp_path / "copy")
    assert (
        len(json.loads(run(bone2gene, "gallery", "list", tmp_path / "copy", "--json").stdout))
        == json.loads(run(bone2gene, "gallery", "stats", gallery, "--json").stdout)["cases"]
    )
    run(bone2gene, "gallery", "remove", tmp_path / "copy", case_id)
    assert case_id not in {r["case_id"] for r in json.loads(run(bone2gene, "gallery", "list", tmp_path / "copy", "--json").stdout)}
    gone = run(bone2gene, "gallery", "remove", tmp_path / "copy", case_id, ok=False)
    assert gone.returncode == 2 and "no case" in gone.stderr


def test_manifest_problems_are_explained(bone2gene, gallery: Path, cohort: Path, tmp_path: Path) -> None:
    table = pd.read_csv(cohort)
    table["image"] = [str(cohort.parent / p) for p in table["image"]]
    table.assign(case_id=[f"x{i}" for i in range(len(table))], disorder="no_such_disorder").to_csv(tmp_path / "a.csv", index=False)
    result = run(bone2gene, "gallery", "add", gallery, tmp_path / "a.csv", ok=False)
    assert result.returncode == 2 and "no_such_disorder" in result.stderr and "not in the catalogue" in result.stderr
    table.assign(case_id=[f"y{i}" for i in range(len(table))], sex="male").to_csv(tmp_path / "b.csv", index=False)
    result = run(bone2gene, "gallery", "add", gallery, tmp_path / "b.csv", ok=False)
    assert result.returncode == 2 and "sex must be M or F" in result.stderr
    result = run(bone2gene, "gallery", "stats", tmp_path / "nowhere", ok=False)
    assert result.returncode == 2 and "gallery init" in result.stderr


def test_deeplasia_annotation_layout_imports(bone2gene, gallery: Path, cohort: Path, tmp_path: Path) -> None:
    table = pd.read_csv(cohort).head(3)
    deeplasia = pd.DataFrame(
        {
            "image_ID": [Path(p).name for p in table["image"]],
            "dir": "images",
            "patient_ID": table["patient_id"],
            "sex": table["sex"],
            "bone_age": table["bone_age_months"],
            "chronological_age": table["age_months"],
            "disorder": table["disorder"],
        }
    )
    target = cohort.parent / "deeplasia_annotation.csv"
    deeplasia.to_csv(target, index=False)
    copy = tmp_path / "g2"
    run(bone2gene, "gallery", "init", copy)
    assert "added 3 case(s)" in run(bone2gene, "gallery", "add", copy, target).stdout
    assert {r["case_id"] for r in json.loads(run(bone2gene, "gallery", "list", copy, "--json").stdout)} == {
        Path(p).stem for p in table["image"]
    }


def test_gallery_measure_and_its_own_norms(bone2gene, gallery: Path, tmp_path: Path) -> None:
    """Every case was measured when added; a site's norms replace the bundled ones until told otherwise."""
    measured = run(bone2gene, "gallery", "measure", gallery).stdout
    stats = json.loads(run(bone2gene, "gallery", "stats", gallery, "--json").stdout)
    assert f"measured 0 case(s); {stats['cases']} of {stats['cases']} cases" in measured
    from matcher.bone_norms import BUNDLED_NORMS

    norms = json.loads(BUNDLED_NORMS.read_text())
    (tmp_path / "site.json").write_text(json.dumps({**norms, "population": "120 site controls, 2-16 years"}))
    assert "norms of 120 site controls" in run(bone2gene, "gallery", "norms", gallery, "--use", tmp_path / "site.json").stdout
    assert "norms of 120 site controls" in run(bone2gene, "gallery", "norms", gallery).stdout
    missing = run(bone2gene, "gallery", "norms", gallery, "--use", tmp_path / "nope.json", ok=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert "site controls" not in run(bone2gene, "gallery", "norms", gallery, "--bundled").stdout
