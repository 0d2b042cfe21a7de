"""The hand's landmarks and tubular bones: the Digital Hand Atlas's 37 points, and the 19 bones between them.

Why one module: every part that measures a hand (the landmark model, its training data, the bone
lengths and the pattern profile, the gate's "is the hand whole" check, the web page's drawing)
must agree on what point 21 is and which points bound MC2. Foreign schemes (the RSNA keypoints'
21 names) are mapped here and nowhere else.

The scheme is the atlas's (Payer et al. 2019), for a left hand seen dorsopalmar (thumb on the
image's right): 0-4 distal ulna and radius, 5-12 carpals, 13-17 the bases of metacarpals 5..1,
then each ray from its metacarpophalangeal joint to its tip (thumb 18-20, index 21-24, middle
25-28, ring 29-32, little 33-36). A bone runs from the point at its proximal end to the point at
its distal end, so a joint point is shared by the two bones it separates.
"""

from __future__ import annotations

from dataclasses import dataclass

# 0-12 keep the atlas's own description (distal ulna and radius, carpals) without a name per point
LANDMARK_NAMES: tuple[str, ...] = (
    *(f"distal forearm {i}" for i in range(5)),
    *(f"carpal {i}" for i in range(5, 13)),
    "MC5 base",
    "MC4 base",
    "MC3 base",
    "MC2 base",
    "MC1 base",
    "thumb MCP",
    "thumb IP",
    "thumb tip",
    *(f"{finger} {joint}" for finger in ("index", "middle", "ring", "little") for joint in ("MCP", "PIP", "DIP", "tip")),
)
N_LANDMARKS = len(LANDMARK_NAMES)
WRIST_POINTS = tuple(range(0, 5))
CARPAL_POINTS = tuple(range(5, 13))
MC_BASES = {5: 13, 4: 14, 3: 15, 2: 16, 1: 17}  # ray (1 thumb .. 5 little) -> its metacarpal's base
RAYS: dict[int, tuple[int, ...]] = {  # ray -> its points from the metacarpal base to the tip
    1: (17, 18, 19, 20),
    2: (16, 21, 22, 23, 24),
    3: (15, 25, 26, 27, 28),
    4: (14, 29, 30, 31, 32),
    5: (13, 33, 34, 35, 36),
}
TIPS = tuple(points[-1] for points in RAYS.values())


@dataclass(frozen=True)
class Bone:
    """A tubular bone: its name (MC1..MC5, PP1..PP5, MP2..MP5, DP1..DP5) and the landmarks at its ends."""

    name: str
    ray: int
    proximal: int
    distal: int


def _bones() -> tuple[Bone, ...]:
    bones = []
    for row in ("MC", "PP", "MP", "DP"):
        for ray, points in RAYS.items():
            rows = ("MC", "PP", "DP") if ray == 1 else ("MC", "PP", "MP", "DP")
            if row in rows:
                at = rows.index(row)
                bones.append(Bone(f"{row}{ray}", ray, points[at], points[at + 1]))
    return tuple(bones)


BONES: tuple[Bone, ...] = _bones()  # 19, in the pattern profile's order: MC1-5, PP1-5, MP2-5, DP1-5
BONE_NAMES = tuple(b.name for b in BONES)

# The RSNA keypoints (rsna_100px/keypoints.csv, 21 points) in this scheme: 20 of them. `wrist` is a
# point on the distal radius with no counterpart here. Their fingertips are the atlas's tips: the
# distal phalanx over the middle phalanx reads 0.663 on both (medians, 568 and 93 films).
RSNA_KEYPOINTS: dict[str, int] = {
    **{f"thumb{k}": point for k, point in enumerate(RAYS[1], start=1)},
    **{
        f"{finger}{k}": RAYS[ray][k]
        for finger, ray in (("forefinger", 2), ("middle_finger", 3), ("ring_finger", 4), ("pinky_finger", 5))
        for k in (1, 2, 3, 4)
    },
}


# Foreign annotation schemes: the atlas points each one marks, in its own column order. A scheme
# may put a point elsewhere than the atlas does (the RSNA hand-pose annotation marks the finger
# joints more distally), so a landmark network trained on both learns a
# channel per foreign point (`LandmarkNetConfig.foreign_schemes`) instead of a compromise of the two.
FOREIGN_SCHEMES: dict[str, tuple[int, ...]] = {"rsna": tuple(RSNA_KEYPOINTS.values())}
ATLAS_SCHEME = "atlas"


def hand_length_points() -> tuple[int, int]:
    """The span that stands for the hand's length, for errors as % of it: the middle finger's
    metacarpal base to its tip."""
    return RAYS[3][0], RAYS[3][-1]
