"""Outline measurements of a hand mask: finger gaps (deep, narrow notches between fingers)
and solidity. The quality gate uses them to recognise a hand; the mask uses them to judge
whether its network's outline is plausible before trusting it."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Outline:
    finger_gaps: int
    webs: list[tuple[int, int]]  # the deepest point of each gap (x, y)
    solidity: float  # area / convex hull area: a filled rectangle is 1, a spread hand about 0.5-0.8


def outline_of(mask: np.ndarray) -> Outline:
    """Measure the largest outer contour of a uint8 0/1 (or 0/255) mask."""
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return Outline(0, [], 0.0)
    contour = max(contours, key=cv2.contourArea)
    solidity = cv2.contourArea(contour) / max(cv2.contourArea(cv2.convexHull(contour)), 1.0)
    return Outline(*_webs(contour), solidity=solidity) if len(contour) >= 8 else Outline(0, [], solidity)


def outline_polygon(mask: np.ndarray) -> np.ndarray | None:
    """The hand's outer outline as an (N, 2) int32 polygon in image pixels (x, y), simplified to
    within a pixel; None for an empty mask. Small enough to keep with an analysis and draw later."""
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    return cv2.approxPolyDP(contour, 1.0, True).reshape(-1, 2).astype(np.int32)


def _webs(contour: np.ndarray) -> tuple[int, list[tuple[int, int]]]:
    hull = cv2.convexHull(contour, returnPoints=False)
    if hull is None or len(hull) < 4:
        return 0, []
    try:
        defects = cv2.convexityDefects(contour, hull)
    except cv2.error:
        return 0, []
    if defects is None:
        return 0, []
    _, _, w, h = cv2.boundingRect(contour)
    min_depth = 0.045 * max(w, h)
    webs = []
    for start, end, far, depth in defects.reshape(-1, 4):  # (N,1,4) in OpenCV 4, (N,4) in 5
        if depth / 256.0 < min_depth:
            continue
        a, b, c = contour[start][0], contour[end][0], contour[far][0]
        # a finger gap is a narrow notch: the two fingertips are close compared with its depth
        if np.linalg.norm(a - b) < 3.0 * depth / 256.0:
            webs.append((int(c[0]), int(c[1])))
    return len(webs), webs


def looks_like_a_hand(mask: np.ndarray, min_gaps: int = 2, max_solidity: float = 0.9) -> bool:
    """A hand outline: at least `min_gaps` finger gaps and not a filled block (a film, a label)."""
    outline = outline_of(mask)
    return outline.finger_gaps >= min_gaps and outline.solidity <= max_solidity
