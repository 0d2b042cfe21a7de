"""Is the whole hand on the film? Read from its landmarks, for the films the hand mask cannot judge.

The mask sees where bright tissue touches the image's edges, which cannot tell a fingertip that
touches the top edge (tight framing, common on real films) from a finger cut off by it, nor a
hand that fills the frame from a page of text. The landmarks can: a hand is whole when its
wrist (radius and ulna), its five metacarpal bases, every finger joint and the five tips are all
found inside the film, and every ray runs outwards from the wrist, base to tip, as a hand's do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from matcher.hand_scheme import LANDMARK_NAMES, RAYS, WRIST_POINTS
from matcher.landmarks import HandLandmarks

EDGE_TOLERANCE = 0.01  # of the image's side: a point this far outside still lies on the edge (a tip touching it)
REQUIRED = tuple(sorted({*WRIST_POINTS, *(p for points in RAYS.values() for p in points)}))  # 29 of the 37: all but the carpals
RAY_NAMES = {1: "thumb", 2: "index finger", 3: "middle finger", 4: "ring finger", 5: "little finger"}


@dataclass(frozen=True)
class Wholeness:
    whole: bool
    missing: list[str]  # required points not found, or found outside the film
    disordered: list[str]  # rays whose points do not run outwards from the wrist

    def explanation(self) -> str:
        """What is missing, in words, for a refusal."""
        rays = [RAY_NAMES[r] for r, points in sorted(RAYS.items()) if any(LANDMARK_NAMES[p] in self.missing for p in points)]
        parts = [f"the {', '.join(rays)} not fully on the film"] if rays else []
        if any(LANDMARK_NAMES[p] in self.missing for p in WRIST_POINTS):
            parts.append("the wrist not on the film")
        if self.disordered:
            parts.append(f"the {' and '.join(self.disordered)} not running out from the wrist as in a whole hand")
        return "; ".join(parts) or "the whole hand is on the film"


def wholeness(landmarks: HandLandmarks, shape: tuple[int, int]) -> Wholeness:
    """Whether `landmarks` (found on a film of `shape` (height, width)) show the whole hand."""
    height, width = shape
    points = landmarks.points.astype(float)
    margin_x, margin_y = EDGE_TOLERANCE * width, EDGE_TOLERANCE * height
    with np.errstate(invalid="ignore"):
        inside = (
            np.isfinite(points).all(axis=1)
            & (points[:, 0] >= -margin_x)
            & (points[:, 0] <= width - 1 + margin_x)
            & (points[:, 1] >= -margin_y)
            & (points[:, 1] <= height - 1 + margin_y)
        )
    missing = [LANDMARK_NAMES[p] for p in REQUIRED if not inside[p]]
    wrist = points[list(WRIST_POINTS)][inside[list(WRIST_POINTS)]]
    disordered = []
    if len(wrist):
        centre = wrist.mean(axis=0)
        for ray, chain in RAYS.items():
            found = [p for p in chain if inside[p]]
            reach = np.linalg.norm(points[found] - centre, axis=1)
            if len(found) >= 2 and not np.all(np.diff(reach) > 0):
                disordered.append(RAY_NAMES[ray])
    return Wholeness(not missing and not disordered, missing, disordered)
