"""Is this a usable dorsopalmar hand radiograph? And if not, why not, in plain words.

Each check measures one thing and refuses with a reason a clinician can act on:

- colour: a colour photograph (a radiograph saved as RGB has equal channels; a phone
  photo of a film has only a slight tint: both pass);
- exposure: blank (almost uniform), or the hand itself mostly clipped to white or black
  (black or white surroundings are what most exported films look like: not a fault);
- hand: a single main object of plausible size whose outline has finger gaps, with
  internal structure (bones) on a quiet background (a film, not a scene);
- another hand-shaped object (labels, markers, rulers and film edges are not hands); the
  hand cut off at an image edge other than the one the forearm leaves by (a fingertip or
  thumb touching the edge is not: real films are often framed that tightly).

Where the mask alone would refuse a film as cut off, or as holding no hand because the hand
fills the frame, the hand's landmarks decide (`matcher.hand_wholeness`): the whole hand found
inside the film is accepted, and a refusal names the fingers that are not on it. Only those
films pay for finding the landmarks.

A rotated hand (sideways, upside down) is usable and gets a warning, not a refusal.
All measurements run on a 256-pixel working copy of the image and its hand mask.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from matcher.hand_shape import looks_like_a_hand, outline_of
from matcher.io import Radiograph
from matcher.mask import HandMask, segment_hand, tissue_binary

if TYPE_CHECKING:
    from matcher.hand_wholeness import Wholeness
    from matcher.landmarks import HandLandmarks

WORK_SIDE = 256
LandmarkFinder = Callable[[np.ndarray], "HandLandmarks"]  # a film (grey, bone bright) -> its landmarks


@dataclass(frozen=True)
class GateConfig:
    """Thresholds, tuned on ../shared/real_hands, the synthetic cohort and skimage images."""

    max_colour_difference: float = 0.04
    min_dynamic_range: float = 0.05
    max_clipped_fraction: float = 0.40  # of the hand's own pixels
    min_hand_fraction: float = 0.03
    max_hand_fraction: float = 0.65  # real films: at most 0.50 in 524 (a page of text: 0.79)
    min_hand_contrast: float = 0.12  # hand vs surroundings, of the 1-99% range (real films >= 0.28; the moon 0.05)
    min_finger_gaps: int = 2  # short-fingered dysplasias have shallow gaps: do not demand all four
    min_interior_texture: float = 0.012
    max_interior_texture: float = 0.15  # real films at most 0.08 in 524; a brick wall 0.19
    max_background_texture: float = 0.045  # real films at most 0.025 in 524
    second_object_ratio: float = 0.35
    max_rotation_deg: float = 50.0  # beyond: a warning
    max_cut_fraction: float = 0.06  # of the image perimeter, outside the forearm's edge


@dataclass(frozen=True)
class GateVerdict:
    accepted: bool
    reasons: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    measurements: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _working_copy(image01: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = image01.shape
    scale = WORK_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(image01, size, interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize((mask > 0).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    return small, small_mask


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


def _hands_outside(pixels: np.ndarray, hand: np.ndarray) -> list[int]:
    """Areas (working-copy pixels, largest first) of hand-shaped tissue regions away from the hand.

    Tissue is what the classical mask finds brighter than its local background. Only an
    outline with finger gaps counts: labels, markers, rulers, film edges and the film
    itself on a light box are blocks, not hands.
    """
    binary = tissue_binary(pixels)
    h, w = binary.shape
    hand_here = cv2.resize(hand, (w, h), interpolation=cv2.INTER_NEAREST)
    binary[cv2.dilate(hand_here, np.ones((7, 7), np.uint8)) > 0] = 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    hx, hy, hw, hh = cv2.boundingRect(hand_here)
    areas = []
    for label in range(1, count):
        x, y, bw, bh, area = stats[label]
        touches = x == 0 or y == 0 or x + bw == w or y + bh == h
        if touches and min(bw, bh) < 0.08 * max(h, w):
            continue  # a strip along an edge: collimation blade, detector border
        overlap = max(0, min(x + bw, hx + hw) - max(x, hx)) * max(0, min(y + bh, hy + hh) - max(y, hy))
        if overlap > 0.3 * bw * bh:
            continue  # within the hand's own box: the part of this hand that the mask missed
        if area * (hand.size / binary.size) > 0.1 * hand.sum() and looks_like_a_hand(labels[y : y + bh, x : x + bw] == label):
            areas.append(int(area) * (hand.size / binary.size))
    return sorted(areas, reverse=True)


def _exposure(radiograph: Radiograph, config: GateConfig, measured: dict[str, float]) -> tuple[np.ndarray, str | None]:
    """The 512-px working copy in [0, 1], and a refusal code when the image is blank."""
    h, w = radiograph.pixels.shape
    scale = min(1.0, 512 / max(h, w))
    working = cv2.resize(radiograph.pixels, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    image = working.astype(np.float32) / float(radiograph.max_value)
    low, high = np.percentile(image[::2, ::2], [1, 99])
    measured["dynamic_range"] = round(float(high - low), 4)
    measured["image_clipped"] = round(float(max((image >= 0.995).mean(), (image <= 0.005).mean())), 4)
    return image, ("blank" if high - low < config.min_dynamic_range else None)


def _clipped_inside(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Fractions of the hand's pixels clipped to white and to black."""
    inside = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    values = image[inside]
    if values.size == 0:
        return 0.0, 0.0
    return float((values >= 0.995).mean()), float((values <= 0.005).mean())


def _cut(mask: np.ndarray) -> tuple[float, int]:
    """Border contact outside the forearm's run: its share of the perimeter and its number of runs."""
    runs = sorted(_border_runs(mask))
    if not runs:
        return 0.0, 0
    return sum(runs[:-1]) / (2 * sum(mask.shape)), len(runs) - 1


class _LandmarkCheck:
    """The landmarks' word on whether the whole hand is on the film, asked for at most once (None: no landmark model)."""

    def __init__(self, radiograph: Radiograph, finder: LandmarkFinder | Literal["bundled"] | None) -> None:
        self.radiograph, self.finder = radiograph, finder

    @functools.cached_property
    def answer(self) -> Wholeness | None:
        from matcher.hand_wholeness import wholeness

        finder = self.finder
        if finder == "bundled":
            from matcher.hand_measure import bundled_measurer

            measurer = bundled_measurer()
            finder = None if measurer is None else measurer.landmarks_of
        found = None if finder is None else finder(self.radiograph.normalised())
        return None if found is None else wholeness(found, self.radiograph.pixels.shape[:2])


class _Verdict:
    """Collects refusals and warnings while the checks run."""

    def __init__(self, measured: dict[str, float], whole: _LandmarkCheck) -> None:
        self.codes: list[str] = []
        self.reasons: list[str] = []
        self.warnings: list[str] = []
        self.measured = measured
        self.whole = whole

    def whole_by_landmarks(self) -> bool:
        """Whether the landmarks find the whole hand on the film (recorded with the measurements)."""
        answer = self.whole.answer
        if answer is not None:
            self.measured["whole_by_landmarks"] = float(answer.whole)
        return answer is not None and answer.whole

    def refuse(self, code: str, reason: str) -> None:
        self.codes.append(code)
        self.reasons.append(reason)

    def result(self) -> GateVerdict:
        return GateVerdict(not self.codes, self.reasons, self.codes, self.measured, self.warnings)


def assess_quality(
    radiograph: Radiograph,
    hand: HandMask | None = None,
    config: GateConfig | None = None,
    landmarks: LandmarkFinder | Literal["bundled"] | None = "bundled",
) -> GateVerdict:
    """The gate's verdict for one image (its hand mask is computed when not given). `landmarks`
    finds a film's landmarks where the mask cannot tell whether the whole hand is on it (default:
    the bundled landmark model, when installed; None: the mask alone decides)."""
    config = config or GateConfig()
    meta = radiograph.metadata
    verdict = _Verdict({"channel_difference": round(meta.channel_difference, 4)}, _LandmarkCheck(radiograph, landmarks))
    if meta.colour and meta.channel_difference > config.max_colour_difference:
        verdict.refuse("colour_photograph", "this is a colour photograph, not a radiograph; upload the X-ray image itself (DICOM or PNG)")
    image, blank = _exposure(radiograph, config, verdict.measured)
    if blank:
        verdict.refuse("blank", "the image is almost uniform (blank); it shows no anatomy to analyse")
        return verdict.result()
    hand = hand or segment_hand(radiograph.pixels)
    small, mask = _working_copy(image, hand.mask)
    verdict.measured["hand_fraction"] = round(float(mask.mean()), 4)
    if not config.min_hand_fraction <= mask.mean() <= config.max_hand_fraction:
        if verdict.measured["image_clipped"] > config.max_clipped_fraction:
            verdict.refuse(
                "exposure",
                f"{verdict.measured['image_clipped']:.0%} of the image is clipped to pure white or black "
                "and no hand can be told from it; repeat or re-export the radiograph",
            )
            return verdict.result()
        if mask.mean() < config.min_hand_fraction or not verdict.whole_by_landmarks():  # a hand filling the frame may be whole
            verdict.refuse("no_hand", "no hand could be found in the image; upload a dorsopalmar radiograph of one hand and wrist")
            return verdict.result()
    _check_exposure(image, mask, config, verdict)
    _check_hand(image, small, mask, config, verdict)
    return verdict.result()


def _check_exposure(image: np.ndarray, mask: np.ndarray, config: GateConfig, verdict: _Verdict) -> None:
    white, black = _clipped_inside(image, mask)
    verdict.measured.update(clipped_white=round(white, 4), clipped_black=round(black, 4))
    if max(white, black) > config.max_clipped_fraction:
        which = "white (over-exposed)" if white > black else "black (under-exposed)"
        verdict.refuse("exposure", f"{max(white, black):.0%} of the hand is pure {which}; repeat or re-export the radiograph")


def _contrast(small: np.ndarray, mask: np.ndarray, spread: float) -> float:
    """How much brighter the hand is than its surroundings, as a share of the image's range."""
    inside, outside = small[mask > 0], small[mask == 0]
    if inside.size == 0 or outside.size == 0:
        return 0.0
    return float(np.median(inside) - np.median(outside)) / spread


def _check_hand(image: np.ndarray, small: np.ndarray, mask: np.ndarray, config: GateConfig, verdict: _Verdict) -> None:
    outline = outline_of(mask)
    spread = max(verdict.measured["dynamic_range"], 1e-3)
    contrast = _contrast(small, mask, spread)
    verdict.measured["hand_contrast"] = round(contrast, 3)
    interior = _high_pass_std(small, cv2.erode(mask, np.ones((5, 5), np.uint8)))
    background = _high_pass_std(small, cv2.dilate(mask, np.ones((9, 9), np.uint8)) == 0, robust=True)
    verdict.measured.update(
        finger_gaps=outline.finger_gaps,
        solidity=round(outline.solidity, 3),
        interior_texture=round(interior / spread, 4),
        background_texture=round(background / spread, 4),
    )
    others = _hands_outside((image * 255).astype(np.uint8), mask)
    second = others[0] / max(int(mask.sum()), 1) if others else 0.0
    verdict.measured["second_object_ratio"] = round(second, 3)
    if second > config.second_object_ratio and others[0] > 0.03 * small.size:
        verdict.refuse("several_objects", "more than one hand is in the image; upload one hand per radiograph")
    if background / spread > config.max_background_texture:
        verdict.refuse("not_radiograph", "the background is textured like a photograph of a scene, not a radiograph")
    cut, cut_runs = _cut(mask)
    verdict.measured.update(cut_fraction=round(cut, 4), cut_runs=cut_runs)
    if cut > config.max_cut_fraction and not verdict.whole_by_landmarks():
        answer = verdict.whole.answer
        found = f" ({answer.explanation()})" if answer is not None else ""
        verdict.refuse("cut_off", f"the hand is cut off at the edge of the image{found}; the whole hand and wrist must be visible")
        return
    textured = config.min_interior_texture <= interior / spread <= config.max_interior_texture
    if outline.finger_gaps < config.min_finger_gaps or not textured:
        verdict.refuse("not_a_hand", "no hand with fingers and bones was recognised; upload a dorsopalmar hand radiograph")
        return
    if contrast < config.min_hand_contrast:  # a hand's outline and bones, too faint against the surroundings to trust
        verdict.refuse(
            "low_contrast",
            f"the hand barely stands out from its surroundings ({contrast:.1%} of the image's grey range brighter, "
            f"{config.min_hand_contrast:.1%} needed); re-export the radiograph with its full grey range or a window set on the hand",
        )
        return
    rotation = _hand_direction(mask, outline.webs)
    verdict.measured["rotation_deg"] = round(rotation, 1)
    if abs(rotation) > config.max_rotation_deg:
        verdict.warnings.append(
            f"the hand is rotated by about {abs(rotation):.0f} degrees (fingers should point up); it was analysed as it is"
        )
