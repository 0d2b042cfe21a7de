"""Cohort generation: manifest contract, ground truth, determinism, disorder effects in the data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from training.synth.cohort import (
    MANIFEST_COLUMNS,
    CohortConfig,
    CohortError,
    PlannedCase,
    generate_cohort,
    plan_cohort,
    sample_anatomy,
    simulate,
)
from training.synth.spec import builtin_specs

SPECS = {s.id: s for s in builtin_specs()}
DESIGN_COLUMNS = ["image", "case_id", "patient_id", "sex", "age_months", "disorder", "gene", "bone_age_months", "source", "split"]


def test_manifest_follows_the_design_contract(small_cohort: tuple[Path, pd.DataFrame]) -> None:
    out, _manifest = small_cohort
    on_disk = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert list(on_disk.columns[: len(DESIGN_COLUMNS)]) == DESIGN_COLUMNS
    assert list(on_disk.columns) == MANIFEST_COLUMNS
    assert len(on_disk) == 36 and on_disk["case_id"].is_unique
    assert set(on_disk["sex"]) <= {"M", "F"}
    assert (on_disk["source"] == "synthetic").all()
    for rel in list(on_disk["image"]) + list(on_disk["mask"]):
        assert not Path(rel).is_absolute() and (out / rel).is_file()
    assert on_disk["patient_id"].nunique() < len(on_disk), "some patients should have follow-up visits"
    assert (on_disk.loc[on_disk["disorder"] == "unaffected", "gene"] == "").all()


def test_images_and_masks_match_and_masks_cover_the_hand(small_cohort: tuple[Path, pd.DataFrame]) -> None:
    out, manifest = small_cohort
    for _, row in manifest.head(8).iterrows():
        image = cv2.imread(str(out / row["image"]), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(out / row["mask"]), cv2.IMREAD_UNCHANGED)
        assert image.dtype == np.uint8 and image.shape == mask.shape == (row["height"], row["width"])
        assert set(np.unique(mask)) <= {0, 255}
        assert 0.15 < (mask > 0).mean() < 0.85
        assert image[mask > 0].mean() > image[mask == 0].mean()


def test_bone_table_gives_per_bone_lengths(small_cohort: tuple[Path, pd.DataFrame]) -> None:
    out, manifest = small_cohort
    bones = pd.read_csv(out / "bones.csv")
    assert set(bones["case_id"]) == set(manifest["case_id"])
    one = bones[bones["case_id"] == manifest["case_id"].iloc[0]].set_index("bone")
    assert {"MC3", "PP3", "MP3", "DP3", "radius", "ulna"} <= set(one.index)
    assert (one["length_mm"] > 0).all()
    assert set(bones["epiphysis"]) <= {"absent", "open", "capping", "fused"}


def test_bone_age_ground_truth_is_plausible(small_cohort: tuple[Path, pd.DataFrame]) -> None:
    _, manifest = small_cohort
    assert (manifest["bone_age_months"] > 0).all()
    assert (manifest["bone_age_months"] <= 19 * 12).all()
    assert (manifest["bone_age_months"] - manifest["age_months"]).abs().median() < 24


def sha256_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_by_seed_whatever_the_worker_count(tmp_path: Path) -> None:
    a = generate_cohort(CohortConfig(n=6, out=tmp_path / "a", seed=4, size=128, workers=1))
    generate_cohort(CohortConfig(n=6, out=tmp_path / "b", seed=4, size=128, workers=2))
    generate_cohort(CohortConfig(n=6, out=tmp_path / "c", seed=5, size=128, workers=1))
    assert sha256_tree(tmp_path / "a") == sha256_tree(tmp_path / "b")
    assert sha256_tree(tmp_path / "a") != sha256_tree(tmp_path / "c")
    assert len(a) == 6


def test_existing_cohort_is_never_overwritten_without_asking(tmp_path: Path) -> None:
    generate_cohort(CohortConfig(n=2, out=tmp_path, seed=1, size=96, workers=1))
    before = sha256_tree(tmp_path)
    with pytest.raises(CohortError, match="already holds a cohort"):
        generate_cohort(CohortConfig(n=2, out=tmp_path, seed=2, size=96, workers=1))
    assert sha256_tree(tmp_path) == before
    generate_cohort(CohortConfig(n=2, out=tmp_path, seed=2, size=96, workers=1, overwrite=True))
    assert sha256_tree(tmp_path) != before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n": 0}, "--n"),
        ({"size": 10}, "--size"),
        ({"bits": 12}, "--bits"),  # PNG: 8 or 16
        ({"bits": 10, "format": "dicom"}, "--bits"),
        ({"control_fraction": 2.0}, "--controls"),
        ({"disorders": ("nope",)}, "unknown disorder"),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(tmp_path: Path, change: dict, message: str) -> None:
    config = CohortConfig(**{"n": 2, "out": tmp_path / "x", "size": 96, **change})
    with pytest.raises(CohortError, match=message):
        generate_cohort(config)
    assert not (tmp_path / "x").exists()


def test_plan_restricts_disorders_and_respects_sex_and_age_ranges() -> None:
    plans = plan_cohort(CohortConfig(n=300, out=Path("unused"), disorders=("turner", "unaffected"), control_fraction=0.3))
    assert {p.disorder for p in plans} == {"turner", "unaffected"}
    assert all(p.sex == "F" for p in plans if p.disorder == "turner")
    low, high = SPECS["turner"].age_years
    assert all(low <= p.age_years <= high for p in plans if p.disorder == "turner")
    controls = sum(p.disorder == "unaffected" for p in plans) / len(plans)
    assert 0.2 < controls < 0.4


def bone_ratio(disorder: str, numerator: str, denominator: str, age: float, n: int = 24, sex: str = "M") -> float:
    ratios = []
    for k in range(n):
        sim = simulate(PlannedCase("c", "p", disorder, sex, age, 1000 + k, 2000 + k), SPECS[disorder], 128)
        lengths = {b.name: b.length_mm for b in sim.layout.bones}
        ratios.append(lengths[numerator] / lengths[denominator])
    return float(np.mean(ratios))


@pytest.mark.parametrize(
    ("disorder", "numerator", "denominator", "sex", "age", "expected_change"),
    [
        ("brachydactyly_e", "MC4", "MC3", "M", 10, -0.18),  # short MC4 (spec mean 0.82)
        ("php1a", "MC4", "MC3", "M", 12, -0.15),  # BDE pattern appearing with age
        ("silver_russell", "MP5", "MP3", "M", 8, -0.18),  # short curved MP5
        ("cleidocranial_dysplasia", "MC2", "MC3", "M", 8, 0.10),  # long MC2
        ("brachydactyly_d", "DP1", "PP1", "M", 8, -0.40),  # thumb DP 1/2-2/3 of normal
        ("turner", "MC4", "MC3", "F", 14, -0.06),  # 40% penetrance of ~13% shortening
    ],
)
def test_length_effects_show_in_the_ground_truth(
    disorder: str, numerator: str, denominator: str, sex: str, age: float, expected_change: float
) -> None:
    control = bone_ratio("unaffected", numerator, denominator, age, sex=sex)
    affected = bone_ratio(disorder, numerator, denominator, age, sex=sex)
    change = affected / control - 1
    assert change == pytest.approx(expected_change, abs=0.05)


def mean_bone_age_offset(disorder: str, age: float, n: int = 60) -> float:
    offsets = []
    for k in range(n):
        plan = PlannedCase("c", "p", disorder, "F", age, 3000 + k, 4000 + k)
        _, case = sample_anatomy(plan, SPECS[disorder], np.random.default_rng(plan.image_seed))  # what `simulate` draws
        offsets.append((case.bone_age_years - age) * 12)
    return float(np.mean(offsets))


def test_bone_age_offsets_follow_the_literature() -> None:
    plan = PlannedCase("c", "p", "noonan", "F", 8.0, 3000, 4000)
    drawn = simulate(plan, SPECS["noonan"], 96).case
    assert drawn == sample_anatomy(plan, SPECS["noonan"], np.random.default_rng(plan.image_seed))[1]  # the offsets below are what is drawn
    assert mean_bone_age_offset("unaffected", 8) == pytest.approx(0, abs=4)
    assert mean_bone_age_offset("noonan", 8) == pytest.approx(-14, abs=5)  # variably delayed
    assert mean_bone_age_offset("php1a", 10) > 8  # advanced
    assert mean_bone_age_offset("sga", 3) == pytest.approx(-9, abs=4)  # -10.5 at 24-36 months
    assert mean_bone_age_offset("silver_russell", 4) < -8 < 6 < mean_bone_age_offset("silver_russell", 12.5)
    turner_teen = [
        sample_anatomy(PlannedCase("c", "p", "turner", "F", 17.0, k, k), SPECS["turner"], np.random.default_rng(k))[1].bone_age_years
        for k in range(10)
    ]
    assert max(turner_teen) <= 13.0  # bone age stalls without puberty


def test_a_turned_hand_shifts_the_thumb_and_the_arch_and_leaves_the_third_ray() -> None:
    """Pronation (the film renderer's positioning): a ray's base moves sideways by its depth in the
    metacarpal arch times the sine; the third ray, on the turning axis, stays. The film renderer also
    sets the thumb 10 degrees nearer the index; the classic renderer does neither, so its cases keep
    the pose they always had."""
    import math
    from dataclasses import replace

    from training.synth import anatomy as A
    from training.synth.geometry import build_hand

    plan = PlannedCase("c", "p", "unaffected", "F", 12.0, 3000, 4000)
    flat = simulate(plan, SPECS["unaffected"], 96).case
    film = simulate(plan, SPECS["unaffected"], 96, renderer="film").case.pose
    assert flat.pose.pronation_deg == 0.0 and film.pronation_deg != 0.0
    assert film.thumb_abduction_deg == pytest.approx(flat.pose.thumb_abduction_deg - 10.0)  # and everything else as drawn
    assert replace(film, pronation_deg=0.0, thumb_abduction_deg=flat.pose.thumb_abduction_deg) == flat.pose
    flat = replace(flat, pose=replace(flat.pose, wrist_deviation_deg=0.0))
    turned = replace(flat, pose=replace(flat.pose, pronation_deg=10.0))
    before, after = ({t.name: t for t in build_hand(c).tubes} for c in (flat, turned))
    scale = build_hand(flat).scale
    for digit, name in ((1, "MC1"), (3, "MC3"), (5, "MC5")):
        x = A.RAY_BASES[digit][0] * scale
        expected = x * math.cos(math.radians(10)) + A.RAY_DEPTH_MM[digit] * scale * math.sin(math.radians(10)) - x
        assert after[name].origin[0] - before[name].origin[0] == pytest.approx(expected, abs=1e-6), name
        assert after[name].origin[1] == pytest.approx(before[name].origin[1], abs=1e-6)
    assert after["MC3"].origin == before["MC3"].origin and after["MC1"].origin[0] > before["MC1"].origin[0] + 2 * scale
