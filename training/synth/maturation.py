"""Skeletal maturation as a function of bone age and sex (PHENOTYPES.md section 1).

Bone age is sex-specific (Greulich-Pyle standards are separate for girls and boys), so
every timing here is given per sex and evaluated at the case's bone age, not its
chronological age. A per-case `jitter` shifts individual centres so that the order of
the scaphoid/trapezium/trapezoid and the triquetrum varies as the sources report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.synth.anatomy import Row, TubularBone


@dataclass(frozen=True)
class SexTiming:
    """An age in years for girls and for boys."""

    female: float
    male: float

    def for_sex(self, sex: str) -> float:
        return self.female if sex == "F" else self.male


# Carpal onset (years). eORIF F/M table of PHENOTYPES.md 1a; the sesamoid from its
# relation to pubertal timing (about 0.7 y before peak height velocity).
CARPAL_ONSET: dict[str, SexTiming] = {
    "capitate": SexTiming(2 / 12, 3 / 12),
    "hamate": SexTiming(3 / 12, 4 / 12),
    "triquetrum": SexTiming(1.5, 2.0),
    "lunate": SexTiming(2.5, 4.0),
    "scaphoid": SexTiming(4.0, 5.5),
    "trapezium": SexTiming(4.0, 6.0),
    "trapezoid": SexTiming(4.0, 6.0),
    "pisiform": SexTiming(9.5, 11.0),
    "sesamoid": SexTiming(11.2, 13.2),
}
# When a carpal reaches adult size and shape (approximate: end of the pubertal spurt).
CARPAL_MATURE = SexTiming(13.5, 15.5)

# Epiphyseal onset of the tubular bones (years). Toddler stage F 10 mo-2 y, M 14 mo-3 y;
# row order PP -> MC -> MP -> DP, middle finger first, 5th last, MP5 last of all
# (PHENOTYPES.md 1b). Distal radius ~1 y, distal ulna 5-6 y (1a).
_ROW_ONSET = {
    Row.PP: SexTiming(0.85, 1.2),
    Row.MC: SexTiming(1.05, 1.5),
    Row.MP: SexTiming(1.3, 1.9),
    Row.DP: SexTiming(1.5, 2.2),
}
_DIGIT_ONSET_DELAY = {1: 0.1, 2: 0.1, 3: 0.0, 4: 0.1, 5: 0.3}  # years, middle finger first
_FOREARM_ONSET = {"radius": SexTiming(0.85, 1.1), "ulna": SexTiming(5.0, 6.0)}

# Epiphysis as wide as its metaphysis, then capping it (early/mid puberty F 7-13, M 9-14).
EPIPHYSIS_EQUAL_WIDTH = SexTiming(8.0, 10.0)
EPIPHYSIS_CAPPING = SexTiming(11.0, 13.0)
# Fusion: DP first, then MC and PP, then MP; distal radius and ulna last (1b, Bass 1995).
_ROW_FUSION = {
    Row.DP: SexTiming(13.3, 15.0),
    Row.MC: SexTiming(13.9, 15.8),
    Row.PP: SexTiming(13.9, 15.8),
    Row.MP: SexTiming(14.3, 16.2),
}
_FOREARM_FUSION = {"radius": SexTiming(15.5, 17.2), "ulna": SexTiming(16.0, 17.7)}
FUSION_SCAR_YEARS = 1.5  # the sclerotic physeal line fades over this time after fusion


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def epiphysis_onset(bone: TubularBone, sex: str) -> float:
    """Bone age (years) at which this bone's epiphysis starts to ossify."""
    if bone.row is Row.FOREARM:
        return _FOREARM_ONSET[bone.name].for_sex(sex)
    onset = _ROW_ONSET[bone.row].for_sex(sex) + _DIGIT_ONSET_DELAY[bone.digit]
    if bone.name == "MP5":
        onset += 0.45  # the last phalangeal epiphysis to appear (after DP5)
    if bone.name == "DP1":
        onset -= 0.3  # the thumb's distal epiphysis is an early one
    return onset


def epiphysis_fusion(bone: TubularBone, sex: str) -> float:
    """Bone age (years) at which this bone's physis closes."""
    if bone.row is Row.FOREARM:
        return _FOREARM_FUSION[bone.name].for_sex(sex)
    return _ROW_FUSION[bone.row].for_sex(sex)


@dataclass(frozen=True)
class EpiphysisState:
    """What a radiograph shows of one growth plate.

    `width_ratio` is epiphysis width over metaphysis width, `height_ratio` the epiphysis
    height relative to its adult height, `physis_gap` the radiolucent plate relative to
    its childhood width (1 = open and wide, 0 = closed), `capping` 0..1 how far its edges
    overhang the metaphysis, `scar` 0..1 how visible the fusion line still is.
    """

    present: bool
    width_ratio: float = 0.0
    height_ratio: float = 0.0
    physis_gap: float = 1.0
    capping: float = 0.0
    fused: bool = False
    scar: float = 0.0

    @property
    def stage(self) -> str:
        """A coarse label for manifests and tests."""
        if not self.present:
            return "absent"
        if self.fused:
            return "fused"
        if self.capping > 0.5:
            return "capping"
        return "open"


def epiphysis_state(bone: TubularBone, sex: str, bone_age_years: float, jitter: float = 0.0, fusion_advance: float = 0.0) -> EpiphysisState:
    """The state of `bone`'s epiphysis at a bone age.

    `jitter` delays this centre (years; individual variation or a disorder's late
    ossification), `fusion_advance` closes its physis that many years early.
    """
    ba = bone_age_years - jitter
    onset = epiphysis_onset(bone, sex)
    if ba < onset:
        return EpiphysisState(present=False)
    equal = EPIPHYSIS_EQUAL_WIDTH.for_sex(sex)
    capping_age = EPIPHYSIS_CAPPING.for_sex(sex)
    fusion = max(epiphysis_fusion(bone, sex) - fusion_advance, onset + 1.0)
    growth = _smoothstep((ba - onset) / max(equal - onset, 0.5))
    width = 0.28 + 0.72 * growth + 0.08 * _smoothstep((ba - equal) / max(capping_age - equal, 0.5))
    # a new centre is a round dot (as tall as wide), flattening into a disc as it widens
    height = 0.45 + 0.55 * _smoothstep((ba - onset) / max(capping_age - onset, 0.5))
    capping = _smoothstep((ba - (capping_age - 1.0)) / 2.0)
    if ba >= fusion:
        scar = 1.0 - _smoothstep((ba - fusion) / FUSION_SCAR_YEARS)
        return EpiphysisState(True, 1.0, 1.0, 0.0, 0.0, fused=True, scar=scar)
    gap = 1.0 - 0.8 * _smoothstep((ba - capping_age) / max(fusion - capping_age, 0.5))
    return EpiphysisState(True, width, height, gap, capping)


@dataclass(frozen=True)
class CarpalState:
    """Ossification of one carpal: `size` 0..1 of adult size, `roundness` 1 = a nodule."""

    present: bool
    size: float = 0.0
    roundness: float = 1.0


def carpal_state(name: str, sex: str, bone_age_years: float, jitter: float = 0.0) -> CarpalState:
    """The ossification state of a carpal bone (or the thumb sesamoid)."""
    ba = bone_age_years - jitter
    onset = CARPAL_ONSET[name].for_sex(sex)
    if ba < onset:
        return CarpalState(present=False)
    mature = max(CARPAL_MATURE.for_sex(sex), onset + 2.0)
    progress = (ba - onset) / (mature - onset)
    size = 0.16 + 0.84 * float(np.clip(progress, 0.0, 1.0)) ** 0.6
    roundness = 1.0 - _smoothstep(progress * 1.4)
    return CarpalState(True, size, roundness)


def ossified_carpals(sex: str, bone_age_years: float) -> list[str]:
    """Names of the carpals visible at a bone age, in order of appearance (no jitter)."""
    visible = [n for n in CARPAL_ONSET if n != "sesamoid" and carpal_state(n, sex, bone_age_years).present]
    return sorted(visible, key=lambda n: CARPAL_ONSET[n].for_sex(sex))
