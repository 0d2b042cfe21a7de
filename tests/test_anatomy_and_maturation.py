"""The skeleton follows PHENOTYPES.md section 1: proportions, growth and maturation order."""

from __future__ import annotations

import pytest

from training.synth import anatomy as A
from training.synth import maturation as M

BONES = A.BONES_BY_NAME


def length(name: str) -> float:
    return BONES[name].length_mm


@pytest.mark.parametrize(("bone", "ratio"), [("MC1", 0.72), ("MC2", 1.05), ("MC4", 0.90), ("MC5", 0.83)])
def test_metacarpal_ratios_to_mc3_follow_buryanov(bone: str, ratio: float) -> None:
    assert length(bone) / length("MC3") == pytest.approx(ratio, abs=0.01)


@pytest.mark.parametrize(("digit", "mp", "dp"), [(2, 0.56, 0.40), (3, 0.59, 0.39), (4, 0.62, 0.42), (5, 0.56, 0.49)])
def test_phalangeal_ratios_follow_buryanov(digit: int, mp: float, dp: float) -> None:
    pp = length(f"PP{digit}")
    assert length(f"MP{digit}") / pp == pytest.approx(mp, abs=0.01)
    assert length(f"DP{digit}") / pp == pytest.approx(dp, abs=0.01)


def test_growth_from_3_to_10_years_is_about_37_percent() -> None:
    for sex in ("F", "M"):
        growth = A.size_fraction(10, sex) / A.size_fraction(3, sex)
        assert growth == pytest.approx(1.37, abs=0.05)


def test_adult_female_hand_is_smaller_and_girls_finish_growing_first() -> None:
    assert A.adult_scale("F") < A.adult_scale("M")
    assert A.size_fraction(14, "F") > A.size_fraction(14, "M")
    assert A.size_fraction(18, "F") == A.size_fraction(18, "M") == 1.0


def test_layout_scaled_to_published_adult_hand_length() -> None:
    """Wrist crease to middle fingertip of the scaled layout equals 18.9 cm (M) / 17.0 cm (F)."""
    for sex, expected in A.ADULT_HAND_LENGTH_MM.items():
        layout_length = 20.0 + A.RAY_BASES[3][1] + sum(length(b) for b in A.RAYS[3]) + 3 * A.JOINT_SPACE_MM + 3.95
        assert layout_length * A.adult_scale(sex) == pytest.approx(expected, rel=1e-6)


def test_epiphysis_ends_are_anatomical() -> None:
    """MC2-5, radius and ulna grow distally; MC1 and all phalanges proximally."""
    for bone in A.TUBULAR_BONES:
        distal = bone.row in (A.Row.MC, A.Row.FOREARM) and bone.digit != 1
        assert bone.epiphysis_end == ("distal" if distal else "proximal"), bone.name


def test_carpals_ossify_in_the_published_order() -> None:
    for sex in ("F", "M"):
        onset = {n: t.for_sex(sex) for n, t in M.CARPAL_ONSET.items()}
        assert onset["capitate"] < onset["hamate"] < onset["triquetrum"] < onset["lunate"]
        assert onset["lunate"] < min(onset["scaphoid"], onset["trapezium"], onset["trapezoid"])
        assert max(onset["scaphoid"], onset["trapezium"], onset["trapezoid"]) < onset["pisiform"]
        radius_onset = M.epiphysis_onset(A.RADIUS, sex)
        assert radius_onset < onset["triquetrum"]  # distal radius before the triquetrum
        assert M.epiphysis_onset(A.ULNA, sex) < onset["pisiform"]  # distal ulna before the pisiform


def test_ossified_carpals_accumulate_with_bone_age() -> None:
    seen: list[str] = []
    for months in range(0, 16 * 12, 3):
        now = M.ossified_carpals("M", months / 12)
        assert now[: len(seen)] == seen, "a carpal disappeared or the order changed"
        seen = now
    assert seen == ["capitate", "hamate", "triquetrum", "lunate", "scaphoid", "trapezium", "trapezoid", "pisiform"]
    assert M.ossified_carpals("M", 0.1) == []
    assert M.ossified_carpals("F", 0.5) == ["capitate", "hamate"]


def test_girls_mature_earlier_at_the_same_age() -> None:
    """At equal chronological age (bone age = age), girls show at least as many centres."""
    for age in (0.3, 1.2, 2.5, 4.5, 10.0):
        girls = len(M.ossified_carpals("F", age))
        boys = len(M.ossified_carpals("M", age))
        assert girls >= boys
    girls_lead = [t.male / t.female for n, t in M.CARPAL_ONSET.items() if n != "sesamoid"]
    assert 0.62 <= sorted(1 / r for r in girls_lead)[len(girls_lead) // 2] <= 0.86  # F/M ratio ~0.7


def test_tubular_epiphyses_appear_pp_mc_mp_dp_with_mp5_last() -> None:
    for sex in ("F", "M"):
        by_row = {row: M.epiphysis_onset(BONES[f"{row}3"], sex) for row in ("PP", "MC", "MP", "DP")}
        assert by_row["PP"] < by_row["MC"] < by_row["MP"] < by_row["DP"]
        phalangeal = {b.name: M.epiphysis_onset(b, sex) for b in A.HAND_BONES if b.row is not A.Row.MC}
        assert max(phalangeal, key=phalangeal.get) == "MP5"
        for row in ("PP", "MP", "DP"):
            assert M.epiphysis_onset(BONES[f"{row}3"], sex) <= M.epiphysis_onset(BONES[f"{row}5"], sex)


def test_fusion_order_and_adult_skeleton() -> None:
    for sex in ("F", "M"):
        fuse = {b.name: M.epiphysis_fusion(b, sex) for b in A.TUBULAR_BONES}
        assert fuse["DP3"] < fuse["MC3"] == fuse["PP3"] < fuse["MP3"] < fuse["radius"] <= fuse["ulna"]
        adult = 18.0 if sex == "F" else 19.0
        assert all(M.epiphysis_state(b, sex, adult).fused for b in A.TUBULAR_BONES)
    assert M.epiphysis_fusion(BONES["MC3"], "F") + 1.0 <= M.epiphysis_fusion(BONES["MC3"], "M")


def test_epiphysis_widens_then_caps_then_fuses() -> None:
    bone = BONES["MP3"]
    states = [M.epiphysis_state(bone, "M", ba / 4) for ba in range(0, 19 * 4)]
    widths = [s.width_ratio for s in states if s.present and not s.fused]
    assert widths == sorted(widths)
    stages = [s.stage for s in states]
    order = ["absent", "open", "capping", "fused"]
    assert [order.index(s) for s in stages] == sorted(order.index(s) for s in stages)
    assert set(stages) == set(order)
    early = M.epiphysis_state(bone, "M", 14.0, fusion_advance=3.0)
    assert early.fused and not M.epiphysis_state(bone, "M", 14.0).fused
