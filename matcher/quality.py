"""Is this a usable dorsopalmar hand radiograph? And if not, why not, in plain words.

Each check measures one thing and refuses with a reason a clinician can act on:

- colour: a colour photograph (a radiograph saved as RGB has equal channels; a phone
  photo of a film has only a slight tint: both pass);
- exposure: blank (almost uniform) or mostly clipped to white/black;
- hand: a single main object of plausible size whose outline has finger gaps, with
  internal structure (bones) on a quiet background (a film, not a scene);
- more than one hand; extreme rotation; the hand cut off at an image edge other than the
  one the forearm leaves by.

All measurements run on a 256-pixel working copy of the image and its hand mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from matcher.io import Radiograph
from matcher.mask import HandMask, segment_hand, tissue_binary

WORK_SIDE = 256


@dataclass(frozen=True)
class GateConfig:
    """Thresholds, tuned on ../shared/real_hands, the synthetic cohort and skimage images."""

    max_colour_difference: float = 0.04
    min_dynamic_range: float = 0.10
    max_clipped_fraction: float = 0.40
    min_hand_fraction: float = 0.08
    max_hand_fraction: float = 0.90
    min_finger_gaps: int = 2  # short-fingered dysplasias have shallow gaps: do not demand all four
    min_interior_texture: float = 0.012
    max_background_texture: float = 0.06
    second_object_ratio: float = 0.35
    max_rotation_deg: float = 50.0
    max_cut_fraction: float = 0.025


@dataclass(frozen=True)
class GateVerdict:
    accepted: bool
    reasons: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    measurements: dict[str, float] = field(default_factory=dict)


def _working_copy(image01: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = image01.shape
    scale = WORK_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(image01, size, interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize((mask > 0).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    return small, small_mask


def _finger_gaps(mask: np.ndarray) -> tuple[int, list[tuple[int, int]], float]:
    """Deep concavities of the outline (webs between fingers), their points, and solidity."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return 0, [], 0.0
    contour = max(contours, key=cv2.contourArea)
    area = cv2.contourArea(contour)
    hull_points = cv2.convexHull(contour)
    solidity = area / max(cv2.contourArea(hull_points), 1.0)
    hull = cv2.convexHull(contour, returnPoints=False)
    if hull is None or len(hull) < 4 or len(contour) < 8:
        return 0, [], solidity
    try:
        defects = cv2.convexityDefects(contour, hull)
    except cv2.error:
        return 0, [], solidity
    if defects is None:
        return 0, [], solidity
    x, y, w, h = cv2.boundingRect(contour)
    min_depth = 0.045 * max(w, h)
    webs = []
    for start, end, far, depth in defects.reshape(-1, 4):  # (N,1,4) in OpenCV 4, (N,4) in 5
        if depth / 256.0 < min_depth:
            continue
        a, b, c = contour[start][0], contour[end][0], contour[far][0]
        # a finger gap is a narrow notch: the two fingertips are close compared with its depth
        if np.linalg.norm(a - b) < 3.0 * depth / 256.0:
            webs.append((int(c[0]), int(c[1])))
    return len(webs), webs, solidity


def _high_pass_std(image: np.ndarray, region: np.ndarray, robust: bool = False) -> float:
    """Fine detail in a region: SD of the high-pass image, or its MAD-based SD when `robust`
    (a film's background holds sparse markers and labels, a scene's is textured throughout)."""
    if region.sum() < 50:
        return 0.0
    detail = (image - cv2.GaussianBlur(image, (0, 0), 2.0))[region > 0]
    if robust:
        return float(1.4826 * np.median(np.abs(detail - np.median(detail))))
    return float(detail.std())


def _hand_direction(mask: np.ndarray, webs: list[tuple[int, int]]) -> float:
    """Angle (degrees, 0 = fingers up, positive clockwise) of the forearm-to-fingers axis.

    The axis is the mask's principal axis; it points to the side where the finger webs are.
    """
    ys, xs = np.nonzero(mask)
    points = np.stack([xs, ys], axis=1).astype(float)
    centre = points.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov((points - centre).T))
    axis = vectors[:, -1]
    towards = np.mean(np.array(webs, dtype=float), axis=0) - centre
    if float(axis @ towards) < 0:
        axis = -axis
    return math.degrees(math.atan2(axis[0], -axis[1]))


def _border_runs(mask: np.ndarray) -> list[int]:
    """Lengths of the runs of mask pixels along the image border, walked as one loop."""
    h, w = mask.shape
    loop = np.concatenate([mask[0, :], mask[1:, w - 1], mask[h - 1, ::-1][1:], mask[::-1, 0][1:-1]]) > 0
    if loop.all():
        return [loop.size]
    shift = int(np.argmin(loop))  # start the walk outside any run so runs do not wrap
    loop = np.roll(loop, -shift)
    runs, current = [], 0
    for inside in loop:
        if inside:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    if current:
        runs.append(current)
    return runs


def _objects_outside(pixels: np.ndarray, hand: np.ndarray) -> list[int]:
    """Areas of tissue regions away from the hand (another hand, a second object), largest first.

    Tissue is what the classical mask finds brighter than its local background; thin
    strips along an edge (collimation blades, detector borders) are not objects.
    """
    binary = tissue_binary(pixels)
    h, w = binary.shape
    hand_here = cv2.resize(hand, (w, h), interpolation=cv2.INTER_NEAREST)
    binary[cv2.dilate(hand_here, np.ones((7, 7), np.uint8)) > 0] = 0
    count, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    areas = []
    for x, y, bw, bh, area in stats[1:]:
        touches = x == 0 or y == 0 or x + bw == w or y + bh == h
        if touches and min(bw, bh) < 0.08 * max(h, w):
            continue
        areas.append(int(area) * (hand.size / binary.size))  # in working-copy pixels
    return sorted(areas, reverse=True)


def assess_quality(radiograph: Radiograph, hand: HandMask | None = None, config: GateConfig | None = None) -> GateVerdict:
    """The gate's verdict for one image (its hand mask is computed when not given)."""
    config = config or GateConfig()
    meta = radiograph.metadata
    reasons: list[str] = []
    codes: list[str] = []
    measured: dict[str, float] = {"channel_difference": round(meta.channel_difference, 4)}

    def refuse(code: str, reason: str) -> None:
        codes.append(code)
        reasons.append(reason)

    if meta.colour and meta.channel_difference > config.max_colour_difference:
        refuse("colour_photograph", "this is a colour photograph, not a radiograph; upload the X-ray image itself (DICOM or PNG)")

    # one working copy (longer side 512) serves every statistic below
    h, w = radiograph.pixels.shape
    scale = min(1.0, 512 / max(h, w))
    working = cv2.resize(radiograph.pixels, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    image = working.astype(np.float32) / float(radiograph.max_value)
    sample = radiograph.pixels[::3, ::3].astype(np.float32) / float(radiograph.max_value)  # clipping needs raw pixels
    low, high = np.percentile(sample, [1, 99])
    clipped_white = float((sample >= 0.995).mean())
    clipped_black = float((sample <= 0.005).mean())
    measured.update(dynamic_range=round(float(high - low), 4), clipped_white=round(clipped_white, 4), clipped_black=round(clipped_black, 4))
    if high - low < config.min_dynamic_range:
        refuse("blank", "the image is almost uniform (blank); it shows no anatomy to analyse")
        return GateVerdict(False, reasons, codes, measured)
    if max(clipped_white, clipped_black) > config.max_clipped_fraction:
        which = "white (over-exposed)" if clipped_white > clipped_black else "black (under-exposed)"
        refuse("exposure", f"{max(clipped_white, clipped_black):.0%} of the image is pure {which}; repeat or re-export the radiograph")

    hand = hand or segment_hand(radiograph.pixels)
    small, mask = _working_copy(image, hand.mask)
    measured["hand_fraction"] = round(float(mask.mean()), 4)
    if not config.min_hand_fraction <= mask.mean() <= config.max_hand_fraction:
        refuse("no_hand", "no hand could be found in the image; upload a dorsopalmar radiograph of one hand and wrist")
        return GateVerdict(False, reasons, codes, measured)

    gaps, webs, solidity = _finger_gaps(mask)
    interior = _high_pass_std(small, cv2.erode(mask, np.ones((5, 5), np.uint8)))
    background = _high_pass_std(small, cv2.dilate(mask, np.ones((9, 9), np.uint8)) == 0, robust=True)
    spread = max(float(high - low), 1e-3)
    measured.update(finger_gaps=gaps, solidity=round(solidity, 3), interior_texture=round(interior / spread, 4),
                    background_texture=round(background / spread, 4))  # fmt: skip
    others = _objects_outside(working, mask)
    second = others[0] / max(int(mask.sum()), 1) if others else 0.0
    measured["second_object_ratio"] = round(second, 3)
    if second > config.second_object_ratio and others[0] > 0.03 * small.size:
        refuse("several_objects", "more than one hand (or object) is in the image; upload one hand per radiograph")
    if background / spread > config.max_background_texture:
        refuse("not_radiograph", "the background is textured like a photograph of a scene, not a radiograph")
    runs = _border_runs(mask)
    cut = (sum(runs) - max(runs)) / (2 * sum(mask.shape)) if runs else 0.0
    measured["cut_fraction"] = round(cut, 4)
    if cut > config.max_cut_fraction:
        refuse("cut_off", "the hand is cut off at the edge of the image; the whole hand and wrist must be visible")
        return GateVerdict(False, reasons, codes, measured)
    if gaps < config.min_finger_gaps or interior / spread < config.min_interior_texture:
        refuse("not_a_hand", "no hand with fingers and bones was recognised; upload a dorsopalmar hand radiograph")
        return GateVerdict(False, reasons, codes, measured)
    rotation = _hand_direction(mask, webs)
    measured["rotation_deg"] = round(rotation, 1)
    if abs(rotation) > config.max_rotation_deg:
        refuse("rotation", f"the hand is rotated by about {abs(rotation):.0f} degrees; the fingers should point up, as in a standard view")
    return GateVerdict(not codes, reasons, codes, measured)
