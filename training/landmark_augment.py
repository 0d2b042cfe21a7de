"""Square training views of landmark films: the film placed as inference places it, then varied.

Inference letterboxes a film into the view (`matcher.landmarks.letterbox`). Training starts from the
same placement and varies what films vary in: left and right hands (a mirror; the landmark
identities stay), rotation, hand size in the frame and its position, exposure (gamma, contrast),
noise and blur, resolution (a film we hold only as a small copy, as the RSNA keypoint films at 100 px,
is read enlarged: `low_resolution` teaches the atlas's films that look, so that the atlas's points and
a foreign scheme's are learnt at both resolutions and their channels differ by the schemes alone),
and what surrounds the film (black, white or grey). A part of the hand may be cut off the film
(a half-plane filled with the surround). Points that leave the view or are cut off are absent
(`matcher.landmark_net.ABSENT`): the network learns to be unsure of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from matcher.landmark_net import ABSENT
from matcher.landmarks import letterbox_matrix, normalise_view


@dataclass(frozen=True)
class ViewAugment:
    rotation_deg: float = 25.0
    scale: tuple[float, float] = (0.7, 1.1)  # of the letterboxed size
    shift: float = 0.1  # of the view side
    mirror: float = 0.5
    gamma: tuple[float, float] = (0.6, 1.6)
    noise: float = 0.03
    blur: float = 0.3  # the chance of a Gaussian blur of up to 1.5 px
    cut: float = 0.2  # the chance that part of the hand is cut off the film (its points become absent)
    low_resolution: float = 0.0  # the chance that the view is shrunk to `low_side` px and enlarged back
    low_side: tuple[int, int] = (80, 130)  # the RSNA copies: 100 px across the film


def _transform(shape: tuple[int, int], size: int, augment: ViewAugment | None, rng: np.random.Generator) -> np.ndarray:
    """The 2 x 3 affine matrix from film pixels to view pixels."""
    base = np.vstack([letterbox_matrix(shape, size), [0, 0, 1]])
    if augment is None:
        return base[:2]
    centre = size / 2
    angle = rng.uniform(-augment.rotation_deg, augment.rotation_deg)
    scale = rng.uniform(*augment.scale)
    around = np.vstack([cv2.getRotationMatrix2D((centre, centre), angle, scale), [0, 0, 1]])
    if rng.random() < augment.mirror:
        around = np.array([[-1, 0, size - 1], [0, 1, 0], [0, 0, 1]]) @ around
    around[:2, 2] += rng.uniform(-augment.shift, augment.shift, 2) * size
    return (around @ base)[:2]


def training_view(
    image: np.ndarray, points: np.ndarray, size: int, augment: ViewAugment | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A (size, size) float32 normalised view and the points (L, 2) in its pixels (NaN: unknown or outside)."""
    matrix = _transform(image.shape[:2], size, augment, rng)
    fill = float(rng.choice([0, 255, np.median(image)])) if augment is not None else 0.0
    view = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    moved = points @ matrix[:, :2].T + matrix[:, 2]
    outside = ~((moved >= 0) & (moved <= size - 1)).all(axis=1)
    if augment is not None and rng.random() < augment.cut:
        outside |= _cut_off(view, moved, fill, rng)
    moved[outside & np.isfinite(points).all(axis=1)] = ABSENT
    if augment is not None and rng.random() < augment.low_resolution:
        view = _enlarged_small_copy(view, augment.low_side, rng)
    view = normalise_view(view)
    if augment is not None:
        view = _photometric(view, augment, rng)
    return view.astype(np.float32), moved.astype(np.float32)


def _enlarged_small_copy(view: np.ndarray, sides: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """The view as a small copy of the film would give it: shrunk (each axis on its own, as the
    square 100-px copies squeeze a film) and enlarged back."""
    size = view.shape[0]
    small = cv2.resize(view, (int(rng.integers(*sides)), int(rng.integers(*sides))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def _cut_off(view: np.ndarray, points: np.ndarray, fill: float, rng: np.random.Generator) -> np.ndarray:
    """Fill a random half-plane of the view with the surround (in place); which points it covered."""
    size = view.shape[0]
    angle = rng.uniform(0, 2 * np.pi)
    normal = np.array([np.cos(angle), np.sin(angle)])
    offset = rng.uniform(0.15, 0.45) * size  # how far from the centre the cut runs
    ys, xs = np.mgrid[0:size, 0:size]
    covered = ((xs - size / 2) * normal[0] + (ys - size / 2) * normal[1]) > offset
    view[covered] = fill
    with np.errstate(invalid="ignore"):
        return ((points - size / 2) @ normal) > offset


def _photometric(view: np.ndarray, augment: ViewAugment, rng: np.random.Generator) -> np.ndarray:
    """Exposure, blur and noise on a view normalised to mean 0, SD 1 over the film."""
    unit = np.clip(view * 0.25 + 0.5, 0, 1) ** rng.uniform(*augment.gamma)
    if rng.random() < augment.blur:
        unit = cv2.GaussianBlur(unit, (0, 0), rng.uniform(0.3, 1.5))
    unit = unit + rng.normal(0, rng.uniform(0, augment.noise), unit.shape)
    return normalise_view(np.clip(unit, 0, 1) * 255)
