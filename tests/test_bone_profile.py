"""The 19 bones as a size-free profile, norms fitted by age and sex, and their z-scores
(`matcher.bone_profile`, `matcher.bone_norms`, `training.bone_norms_fit`, `bone2gene norms fit`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matcher.bone_norms import BoneNorms, NormsError, load_norms
from matcher.bone_profile import MIN_REFERENCE, REFERENCE, REFERENCE_BONES, log_profile, reference_offsets
from matcher.hand_scheme import BONE_NAMES
from training.bone_norms_fit import fit_norms

TYPICAL = np.log(np.array([46, 68, 65, 58, 54, 32, 40, 45, 41, 33, 22, 26, 26, 18, 22, 16, 17, 17, 16], float))
MC4 = BONE_NAMES.index("MC4")


def _hands(rng: np.random.Generator, n: int, sd: float = 0.04) -> pd.DataFrame:
    """Unaffected hands: typical log lengths, an age trend in MC4, noise of `sd`, any overall size."""
    ages = rng.uniform(2, 18, n)
    logs = TYPICAL + rng.normal(0, sd, (n, len(BONE_NAMES))) + rng.normal(0, 0.3, (n, 1))
    logs[:, MC4] += 0.01 * (ages - 10)
    table = pd.DataFrame(np.exp(logs), columns=list(BONE_NAMES))
    table.insert(0, "sex", rng.choice(["F", "M"], n))
    table.insert(0, "age_years", ages)
    table.insert(0, "source", "synthetic")
    return table


def test_the_profile_does_not_depend_on_film_scale_and_survives_a_missing_reference_bone() -> None:
    lengths = np.exp(TYPICAL)
    assert np.allclose(log_profile(lengths), log_profile(7.3 * lengths))
    assert len(REFERENCE_BONES) == 15 and not REFERENCE[BONE_NAMES.index("MC2")]
    offsets = reference_offsets(np.stack([log_profile(lengths)]))
    no_tip = lengths.copy()
    no_tip[BONE_NAMES.index("DP5")] = np.nan
    others = np.arange(len(BONE_NAMES)) != BONE_NAMES.index("DP5")
    assert np.allclose(log_profile(no_tip, offsets)[others], log_profile(lengths, offsets)[others])
    assert np.isnan(log_profile(no_tip)).sum() == 1  # only the missing bone
    too_few = lengths.copy()
    too_few[np.flatnonzero(REFERENCE)[: 15 - MIN_REFERENCE + 1]] = np.nan
    assert np.isnan(log_profile(too_few)).all()


def test_norms_recover_an_age_trend_and_give_calibrated_z_scores() -> None:
    rng = np.random.default_rng(0)
    norms = fit_norms(_hands(rng, 800), "synthetic")
    test = _hands(rng, 400)
    z = np.stack([norms.z_scores(row[list(BONE_NAMES)].to_numpy(float), row.age_years, row.sex) for _, row in test.iterrows()])
    beyond = float(np.mean(np.abs(z) > 2))
    assert 0.025 < beyond < 0.08, beyond  # 4.6% for a normal
    assert abs(float(np.mean(z))) < 0.1 and 0.85 < float(np.std(z)) < 1.15

    short = np.exp(TYPICAL.copy())
    short[MC4] *= np.exp(-0.01 * 5 - 3 * 0.04)  # three SDs short for a 5-year-old
    scores = norms.z_scores(short, 5.0, "F")
    assert scores[MC4] < -2.3 and np.abs(np.delete(scores, MC4)).max() < 1.0, scores.round(1)
    assert np.isnan(norms.z_scores(short, 19.5, "F")).all()  # beyond the ages it was fitted on
    assert np.isnan(norms.z_scores(short, 5.0, None)).all()


def test_norms_round_trip_through_json_and_refuse_what_they_cannot_read(tmp_path: Path) -> None:
    norms = fit_norms(_hands(np.random.default_rng(1), 200), "synthetic")
    norms.save(tmp_path / "norms.json")
    again = load_norms(tmp_path / "norms.json")
    lengths = np.exp(TYPICAL)
    assert np.allclose(again.z_scores(lengths, 8.0, "M"), norms.z_scores(lengths, 8.0, "M"), atol=1e-3)
    data = json.loads((tmp_path / "norms.json").read_text())
    (tmp_path / "old.json").write_text(json.dumps({**data, "format": 0}))
    with pytest.raises(NormsError, match="fit them again"):
        load_norms(tmp_path / "old.json")
    with pytest.raises(NormsError, match="cannot read"):
        load_norms(tmp_path / "absent.json")
    assert isinstance(BoneNorms.from_json(data), BoneNorms)


def test_the_bundled_norms_name_their_population_and_cover_every_bone() -> None:
    norms = load_norms()
    assert "atlas" in norms.population and "rsna" in norms.population
    assert np.isfinite(norms.age_range).all() and (norms.age_range[:, 0] < 5).sum() == 15  # MC2-MC5 from the atlas only: 9-19


def test_norms_fit_on_real_hands_leaves_out_the_films_it_is_checked_on(bone2gene, shared_dir: Path, tmp_path: Path) -> None:
    from training.bone_norm_sources import atlas_hands, held_out_rsna_ids, rsna_keypoint_hands
    from training.landmark_data import dha_split

    refused = bone2gene("norms", "fit", "--out", tmp_path / "x.json")
    assert refused.returncode == 2 and "give unaffected hands" in refused.stderr
    out = tmp_path / "norms.json"
    result = bone2gene("norms", "fit", "--atlas", shared_dir / "dha", "--rsna", shared_dir / "rsna_100px", "--out", out)
    assert result.returncode == 0, result.stderr
    norms = load_norms(out)
    held_atlas = atlas_hands(shared_dir / "dha", dha_split(shared_dir / "dha")[1])
    held_rsna = rsna_keypoint_hands(shared_dir / "rsna_100px", held_out_rsna_ids(shared_dir / "rsna_100px"))
    assert norms.counts == {"rsna_keypoints": 568 - len(held_rsna), "atlas": 93 - len(held_atlas)}
    held = pd.concat([held_atlas, held_rsna])
    z = np.stack([norms.z_scores(r[list(BONE_NAMES)].to_numpy(float), r.age_years, r.sex) for _, r in held.iterrows()])
    beyond = float(np.mean(np.abs(z[np.isfinite(z)]) > 2))
    assert 0.03 <= beyond <= 0.08, beyond  # calibrated on real unaffected hands it never saw


def test_a_specs_expected_profile_shows_the_bones_it_shortens_relative_to_the_hand() -> None:
    from training.protocol.phantom_profiles import SHORTENED, spec_profile
    from training.synth.spec import builtin_specs

    specs = {s.id: s for s in builtin_specs()}
    brachydactyly_e = spec_profile(specs["brachydactyly_e"])
    assert brachydactyly_e[MC4] < SHORTENED and brachydactyly_e[MC4] == brachydactyly_e.min()
    assert np.allclose(spec_profile(specs["unaffected"]), 0.0)
    achondroplasia = spec_profile(specs["achondroplasia"])  # everything shorter: only the pattern remains
    assert achondroplasia[BONE_NAMES.index("MP3")] < SHORTENED < 0 < achondroplasia[BONE_NAMES.index("DP3")]


def test_a_site_fits_norms_on_its_own_control_films(bone2gene, render_cohort, tmp_path: Path) -> None:
    """The bundled landmark model measures the controls; an unreadable film is left out, not fatal."""
    cohort, manifest = render_cohort(n=40, seed=21, size=256, disorders=("unaffected",))
    table = manifest.assign(image=[str(cohort / p) for p in manifest["image"]])
    (tmp_path / "broken.png").write_bytes(b"not an image")
    broken = table.iloc[:1].assign(image=str(tmp_path / "broken.png"), case_id="broken")
    pd.concat([table, broken]).to_csv(tmp_path / "controls.csv", index=False)
    out = tmp_path / "site.json"
    result = bone2gene("norms", "fit", "--controls", tmp_path / "controls.csv", "--population", "our controls", "--out", out)
    assert result.returncode == 0, result.stderr
    norms = load_norms(out)
    assert norms.population == "our controls" and norms.counts == {"controls": 41}
    covered = np.isfinite(norms.age_range[:, 0])
    assert covered.sum() >= 15, norms.age_range  # each bone with 15+ measured hands of each sex has a norm
