"""The bones of the left hand and wrist, their adult proportions, and hand growth by age.

Adult radiographic bone lengths are Buryanov & Kotiuk 2010 (PHENOTYPES.md section 1c);
widths are general anatomical knowledge (marked as such: no measured table was found).
Children are scaled from adult proportions by a hand-size growth curve, which is what
PHENOTYPES.md gap 1 recommends: the metacarpal ratios are stable across childhood.

Coordinates used by the whole generator: millimetres, origin at the adult capitate
centre, +y distal (towards the fingertips), +x radial (towards the thumb). A left hand
seen dorsopalmar is displayed with the thumb on the image's right, so +x is image-right.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np


class Row(StrEnum):
    """Which row of tubular bones a bone belongs to (drives maturation order)."""

    MC = "MC"
    PP = "PP"
    MP = "MP"
    DP = "DP"
    FOREARM = "forearm"


@dataclass(frozen=True)
class TubularBone:
    """One long bone as the generator needs it.

    `epiphysis_end` says where its growth plate is: metacarpals 2-5, radius and ulna have
    it distally, the thumb metacarpal and all phalanges proximally. Getting this right is
    what makes a child's hand look like one.
    """

    name: str
    row: Row
    digit: int  # 1..5 (thumb..little), 0 for the forearm bones
    length_mm: float  # adult, whole bone including the fused epiphysis
    shaft_width_mm: float  # adult mid-shaft width (general anatomical knowledge)
    proximal_width: float  # end width as a multiple of the shaft width
    distal_width: float
    epiphysis_end: str  # "proximal" or "distal"
    epiphysis_height: float  # adult epiphysis height as a fraction of the bone length


# Adult lengths (mm): PHENOTYPES.md 1c, Buryanov & Kotiuk 2010.
_LENGTHS = {
    "MC1": 46.22,
    "PP1": 31.57,
    "DP1": 21.67,
    "MC2": 68.12,
    "PP2": 39.78,
    "MP2": 22.38,
    "DP2": 15.82,
    "MC3": 64.60,
    "PP3": 44.63,
    "MP3": 26.33,
    "DP3": 17.40,
    "MC4": 58.00,
    "PP4": 41.37,
    "MP4": 25.65,
    "DP4": 17.30,
    "MC5": 53.69,
    "PP5": 32.57,
    "MP5": 18.11,
    "DP5": 15.96,
}
# Soft tissue beyond the distal phalanx tip (mm), same source.
FINGERTIP_PAD_MM = {1: 5.67, 2: 3.84, 3: 3.95, 4: 3.95, 5: 3.73}

# Adult mid-shaft widths (mm). General anatomical knowledge, not from a measured table.
_WIDTHS = {
    "MC1": 9.0,
    "PP1": 8.8,
    "DP1": 6.2,
    "MC2": 8.4,
    "PP2": 8.0,
    "MP2": 6.6,
    "DP2": 4.6,
    "MC3": 8.4,
    "PP3": 8.4,
    "MP3": 7.0,
    "DP3": 5.0,
    "MC4": 7.0,
    "PP4": 7.8,
    "MP4": 6.6,
    "DP4": 4.7,
    "MC5": 7.4,
    "PP5": 6.8,
    "MP5": 5.6,
    "DP5": 4.2,
}


def _hand_bone(name: str) -> TubularBone:
    row = Row(name[:2])
    digit = int(name[2])
    if row is Row.MC:
        proximal_epiphysis = digit == 1
        return TubularBone(
            name,
            row,
            digit,
            _LENGTHS[name],
            _WIDTHS[name],
            proximal_width=1.55,
            distal_width=1.55,
            epiphysis_end="proximal" if proximal_epiphysis else "distal",
            epiphysis_height=0.10 if proximal_epiphysis else 0.15,
        )
    if row is Row.DP:
        return TubularBone(
            name,
            row,
            digit,
            _LENGTHS[name],
            _WIDTHS[name],
            proximal_width=1.75,
            distal_width=1.35,
            epiphysis_end="proximal",
            epiphysis_height=0.17,
        )
    return TubularBone(
        name,
        row,
        digit,
        _LENGTHS[name],
        _WIDTHS[name],
        proximal_width=1.55,
        distal_width=1.30,
        epiphysis_end="proximal",
        epiphysis_height=0.11,
    )


HAND_BONES: tuple[TubularBone, ...] = tuple(_hand_bone(n) for n in _LENGTHS)

# The visible distal forearm. Lengths are how much of the bone the field shows.
RADIUS = TubularBone(
    "radius",
    Row.FOREARM,
    0,
    95.0,
    15.5,
    proximal_width=1.0,
    distal_width=1.95,
    epiphysis_end="distal",
    epiphysis_height=0.10,
)
ULNA = TubularBone(
    "ulna",
    Row.FOREARM,
    0,
    93.0,
    11.5,
    proximal_width=1.0,
    distal_width=1.45,
    epiphysis_end="distal",
    epiphysis_height=0.08,
)

TUBULAR_BONES: tuple[TubularBone, ...] = (*HAND_BONES, RADIUS, ULNA)
BONES_BY_NAME: dict[str, TubularBone] = {b.name: b for b in TUBULAR_BONES}

# Digit rays, proximal to distal. The thumb has no middle phalanx.
RAYS: dict[int, tuple[str, ...]] = {
    1: ("MC1", "PP1", "DP1"),
    2: ("MC2", "PP2", "MP2", "DP2"),
    3: ("MC3", "PP3", "MP3", "DP3"),
    4: ("MC4", "PP4", "MP4", "DP4"),
    5: ("MC5", "PP5", "MP5", "DP5"),
}


@dataclass(frozen=True)
class CarpalBone:
    """A carpal (or sesamoid) as an ellipse in the adult layout.

    `half_x`/`half_y` are semi-axes before rotation; `rotation_deg` turns the long (y)
    axis towards the radial side. Adult sizes are general anatomical knowledge.
    """

    name: str
    centre: tuple[float, float]
    half_x: float
    half_y: float
    rotation_deg: float


CARPALS: tuple[CarpalBone, ...] = (
    CarpalBone("capitate", (0.0, 0.0), 8.0, 12.6, 0.0),
    CarpalBone("hamate", (-12.0, 1.0), 7.5, 10.9, -10.0),
    CarpalBone("trapezoid", (10.0, 4.0), 5.8, 6.9, 10.0),
    CarpalBone("trapezium", (19.0, 1.0), 8.0, 7.5, 30.0),
    CarpalBone("scaphoid", (12.5, -13.0), 6.7, 13.8, 50.0),
    CarpalBone("lunate", (-1.0, -14.5), 8.6, 7.8, 0.0),
    CarpalBone("triquetrum", (-12.5, -10.5), 6.9, 7.5, -30.0),
    CarpalBone("pisiform", (-15.0, -7.5), 5.5, 5.5, 0.0),
    # Adductor (ulnar) sesamoid of the thumb MCP joint; placed at the MC1 head later.
    CarpalBone("sesamoid", (0.0, 0.0), 2.4, 2.8, 0.0),
)
CARPALS_BY_NAME: dict[str, CarpalBone] = {c.name: c for c in CARPALS}

# Where each ray starts (proximal end of its metacarpal) and which way it points
# (degrees, positive turns towards the thumb). Adult layout, general knowledge.
RAY_BASES: dict[int, tuple[float, float]] = {
    1: (20.0, 3.0),
    2: (9.5, 12.5),
    3: (0.0, 12.0),
    4: (-9.5, 11.0),
    5: (-17.5, 8.5),
}
RAY_ANGLES_DEG: dict[int, float] = {1: 33.0, 2: 7.0, 3: 0.0, 4: -7.0, 5: -15.0}
# How far each ray's base lies towards the palm from the third's (mm, adult): the transverse
# metacarpal arch, with the thumb's base well in front of the others. A hand turned about its long
# axis (pronation, `Pose.pronation_deg`) shifts each base sideways by this depth times the sine.
RAY_DEPTH_MM: dict[int, float] = {1: 14.0, 2: 2.0, 3: 0.0, 4: 2.5, 5: 6.0}
# Extra angle of the fingers relative to their metacarpal at average finger spread.
FINGER_SPREAD_DEG: dict[int, float] = {1: 3.0, 2: 5.0, 3: 0.0, 4: -6.0, 5: -12.0}
JOINT_SPACE_MM = 1.6  # adult articular gap between neighbouring tubular bones
# Forearm: distal end points (centre of the articular end) in the adult layout.
RADIUS_END = (9.5, -24.5)
ULNA_END = (-13.5, -26.0)  # about 1.5 mm short of the radius: negative ulnar variance

ADULT_HAND_LENGTH_MM = {"M": 189.0, "F": 170.0}  # PHENOTYPES.md 1c (one student sample)
# Our layout's wrist crease (y = -20, the proximal carpal row) to the digit-3 tip, used to
# scale the layout to the adult hand lengths above.
_LAYOUT_HAND_LENGTH_MM = 20.0 + RAY_BASES[3][1] + sum(_LENGTHS[b] for b in RAYS[3]) + 3 * JOINT_SPACE_MM + 3.95

# Fraction of adult hand size by chronological age (years). Anchors: finger length grows
# ~37% from 3 to 10 y (PMID 20399088): 0.76 / 0.55 = 1.38. Girls finish ~2 y earlier
# (PHENOTYPES.md 1b: girls lead by 1.5-2 y around puberty). Other anchors approximate.
_GROWTH_AGES = np.array([0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0])
_GROWTH_M = np.array([0.33, 0.38, 0.43, 0.50, 0.55, 0.62, 0.68, 0.76, 0.82, 0.86, 0.91, 0.95, 0.98, 0.995, 1.0])
_GROWTH_F = np.array([0.35, 0.40, 0.45, 0.52, 0.57, 0.64, 0.70, 0.80, 0.89, 0.94, 0.975, 0.995, 1.0, 1.0, 1.0])


def size_fraction(age_years: float, sex: str) -> float:
    """Hand size relative to a same-sex adult at this chronological age."""
    curve = _GROWTH_F if sex == "F" else _GROWTH_M
    return float(np.interp(age_years, _GROWTH_AGES, curve))


def adult_scale(sex: str) -> float:
    """Scale from the layout's adult (male) dimensions to a same-sex adult hand."""
    return ADULT_HAND_LENGTH_MM[sex] / _LAYOUT_HAND_LENGTH_MM
