"""The pattern profile as evidence: gallery cases keep their measured bones, disorders learn a
typical profile from them, and a query's profile is matched against those profiles."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_of_template

from index.ingest import measure_gallery
from index.profile_evidence import HandProfile, TypicalProfiles, gallery_profiles, profile_z
from index.store import Gallery, GalleryError, NewCase
from matcher.bone_norms import bundled_norms
from matcher.hand_measure import bundled_measurer
from matcher.hand_scheme import BONE_NAMES

SHORT_MC45 = [BONE_NAMES.index("MC4"), BONE_NAMES.index("MC5")]


def _cases(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    z = rng.normal(size=(n, len(BONE_NAMES)))
    z[:, SHORT_MC45] += shift
    return z


def test_a_typical_profile_speaks_only_where_its_cases_differ_from_the_norm() -> None:
    rng = np.random.default_rng(0)
    z = np.concatenate([_cases(rng, 6, -3.0), _cases(rng, 6), _cases(rng, 1, -3.0)])
    labels = ["short_mc45"] * 6 + ["normal_hands"] * 6 + ["one_case"]
    z[-1, 0] = np.nan  # a bone its only case did not show: neutral
    profiles = TypicalProfiles.fit(z, labels)
    order = ["short_mc45", "normal_hands", "one_case", "not_in_gallery"]
    assert profiles.typical("short_mc45")[SHORT_MC45].max() < -2 and profiles.typical("not_in_gallery") is None
    assert profiles.cases[profiles.disorders.index("one_case"), 0] == 0 and profiles.mean[profiles.disorders.index("one_case"), 0] == 0
    patient = np.zeros(len(BONE_NAMES))
    patient[SHORT_MC45] = -3.0
    match = dict(zip(order, profiles.match(patient, order), strict=True))
    assert match["short_mc45"] > match["one_case"] > 2 > 0 > match["normal_hands"]  # one case is a cautious profile
    assert match["not_in_gallery"] == 0
    normal = profiles.match(np.zeros(len(BONE_NAMES)), order)
    assert (normal <= 0).all() and normal[0] < -2  # a normal hand never favours a disorder
    assert (profiles.match(np.full(len(BONE_NAMES), np.nan), order) == 0).all()  # nothing measured: no evidence
    wild = patient.copy()
    wild[0] = 40.0  # one misplaced landmark cannot sink the right disorder alone
    assert profiles.match(wild, order)[0] > match["short_mc45"] - 3.1


def test_a_query_profile_is_read_for_its_age_and_averaged_over_its_films() -> None:
    norms = bundled_norms()
    lengths = np.exp(np.array([np.interp(10.0, norms.ages, row) for row in norms.mean["F"]]))  # a typical girl of 10
    one = profile_z([HandProfile(lengths, 120.0, "F")], norms)
    assert np.nanmax(np.abs(one)) < 0.2 and np.isfinite(one).sum() >= 15
    assert np.isnan(profile_z([HandProfile(lengths, None, "F")], norms)).all()  # no age: no z
    short = lengths.copy()
    short[SHORT_MC45] *= 0.85
    both = profile_z([HandProfile(lengths, 120.0, "F"), HandProfile(short, 120.0, "F")], norms)
    alone = profile_z([HandProfile(short, 120.0, "F")], norms)
    assert both[SHORT_MC45].max() < 0 and np.allclose(both[SHORT_MC45], (one + alone)[SHORT_MC45] / 2)


def _lengths(seed: int) -> np.ndarray:
    lengths = np.random.default_rng(seed).uniform(20, 90, len(BONE_NAMES))
    lengths[3] = np.nan  # a bone not found
    return lengths


def test_cases_keep_their_bones_and_lose_them_with_the_case(tmp_path: Path) -> None:
    from test_gallery import DIM, catalogue, gallery_cases

    with Gallery.create(tmp_path / "g", "fp-a", DIM) as gallery:
        gallery.add_disorders(catalogue())
        cases, _ = gallery_cases(4)
        for i, case in enumerate(cases[:3]):
            case.bone_lengths = _lengths(i)
        bad = NewCase(cases[3].embedding, "M", 10, "d0", bone_lengths=np.full(len(BONE_NAMES), -1.0))
        with pytest.raises(GalleryError, match="bone lengths must be 19 positive numbers"):
            gallery.add_cases([*cases[:3], bad], "fp-a")
        assert gallery.cases().empty and gallery.bones.lengths().empty  # nothing of the refused batch was written
        ids = gallery.add_cases(cases, "fp-a")
        rows = gallery.cases().set_index("case_id")["row"]
        table = gallery.bones.lengths()
        assert list(table.columns) == list(BONE_NAMES) and len(table) == 3 and rows[ids[3]] not in table.index  # the 4th: not measured
        assert np.allclose(table.loc[rows[ids[1]]].to_numpy(), _lengths(1), equal_nan=True)
        gallery.bones.set_lengths({int(rows[ids[3]]): _lengths(7)})
        assert np.allclose(gallery.bones.lengths().loc[rows[ids[3]]].to_numpy(), _lengths(7), equal_nan=True)
        with pytest.raises(GalleryError, match="no case row"):
            gallery.bones.set_lengths({10_000: _lengths(7)})
        gallery.remove_case(ids[1])
        assert rows[ids[1]] not in gallery.bones.lengths().index
        with sqlite3.connect(gallery.path / "gallery.sqlite") as db:
            assert db.execute("SELECT COUNT(*) FROM case_bones WHERE case_row = ?", (int(rows[ids[1]]),)).fetchone()[0] == 0
        assert [a["action"] for a in gallery.audit_log()][:3] == ["remove_case", "measure_bones", "add_cases"]


def test_a_gallery_reads_its_profiles_against_its_own_norms(tmp_path: Path) -> None:
    from matcher.bone_norms import BoneNorms

    norms = bundled_norms()
    site = BoneNorms(**{**norms.__dict__, "population": "site controls", "mean": {s: m - 0.05 for s, m in norms.mean.items()}})
    with Gallery.create(tmp_path / "g", "fp-a", 4) as gallery:
        assert gallery.bones.norms().population == norms.population
        gallery.bones.set_norms(site)
        assert Gallery.open(tmp_path / "g").bones.norms().population == "site controls"
        gallery.bones.set_norms(None)
        assert gallery.bones.norms().population == norms.population
        assert [a["action"] for a in gallery.audit_log()][:2] == ["set_norms", "set_norms"]


@pytest.fixture(scope="module")
def measured_gallery(gallery_template, tmp_path_factory) -> Path:
    if bundled_measurer() is None:
        pytest.skip("no landmark model installed")
    path, _, _ = copy_of_template(gallery_template, tmp_path_factory.mktemp("profiles"))
    return path


def test_ingest_measures_every_case_and_old_galleries_catch_up(measured_gallery: Path) -> None:
    with Gallery.open(measured_gallery) as gallery:
        cases, table = gallery.cases(), gallery.bones.lengths()
        assert set(table.index) == set(cases["row"])  # every case added with its bones
        assert (np.isfinite(table.to_numpy()).sum(axis=1) >= 15).mean() >= 0.9
        forgotten = cases["row"].iloc[:3].tolist()
    with sqlite3.connect(measured_gallery / "gallery.sqlite") as db:  # as if built before cases carried bones
        db.executemany("DELETE FROM case_bones WHERE case_row = ?", [(r,) for r in forgotten])
    with Gallery.open(measured_gallery) as gallery:
        assert measure_gallery(gallery, bundled_measurer()) == 3
        again = gallery.bones.lengths()
        assert np.allclose(again.loc[forgotten].to_numpy(), table.loc[forgotten].to_numpy(), equal_nan=True)
        profiles = gallery_profiles(gallery.cases(), again, gallery.bones.norms())
        assert set(profiles.disorders) == set(gallery.cases()["disorder"].dropna())


def test_a_syndrome_added_with_three_cases_has_a_typical_profile_at_once(measured_gallery: Path) -> None:
    from index.catalogue import Disorder
    from index.query import query

    with Gallery.open(measured_gallery) as gallery:
        gallery.add_disorders([Disorder(id="new_syndrome", name="New syndrome, NEW1-related", genes=["NEW1"])])
        cases = gallery.cases()
        chosen = cases[cases["disorder"] == "brachydactyly_e"].head(3)
        for case_id in chosen["case_id"]:
            gallery.relabel(case_id, "new_syndrome", "NEW1")
        row = int(chosen["row"].iloc[0])
        lengths = gallery.bones.lengths().loc[row].to_numpy()
        hand = [HandProfile(lengths, float(chosen["age_months"].iloc[0]), str(chosen["sex"].iloc[0]))]
        result = query(gallery, gallery.vectors_of([row])[0], hand=hand)
    entry = next(d for d in result.disorders if d.label == "new_syndrome")
    assert entry.sources["typical_profile"] is not None and len(entry.sources["typical_profile"]) == 19
    assert entry.sources["profile_match"] is not None and "profile" in entry.sources["contributions"]
    assert result.profile_z is not None and np.isfinite(result.profile_z).sum() >= 10


def test_real_unaffected_hands_make_no_disorder_likely(measured_gallery: Path, shared_dir: Path) -> None:
    """Real films held out of the landmark model and the norms, against the typical profiles of a
    phantom gallery, weighed by the installed evidence model's profile weight: none lifts a disorder."""
    from index.evidence import default_model
    from training.protocol.real_controls import real_controls

    if not (shared_dir / "dha" / "labels.csv").is_file():
        pytest.skip("../shared/dha is not present")
    with Gallery.open(measured_gallery) as gallery:
        profiles = gallery_profiles(gallery.cases(), gallery.bones.lengths(), gallery.bones.norms())
    _, data = real_controls(shared_dir, bundled_measurer(), profiles, default_model())
    assert data["films"] >= 30
    assert data["highest_probability_max"] < 0.05  # the installed model's profile part alone, for the most lifted disorder
    assert all(v["match_median"] < 0 for d, v in data["per_disorder"].items() if d != "unaffected"), data["per_disorder"]
