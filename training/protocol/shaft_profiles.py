"""What a metacarpal shaft looks like across and within: real films against a cohort's.

At the middle of MC2 and MC3 (between their landmarks, found by the landmark model on every
film alike), the grey profile across the shaft is sampled over 60% of the bone's length on
either side of its axis, averaged along the middle fifth of the bone. From it:
- **cortex contrast**: how much brighter the two cortices are than the medulla between them,
  as a share of the profile's range (a radiograph's hollow tube: clearly positive; a flat-filled
  shape: near zero);
- **shaft texture**: the SD of the fine detail (grey minus its Gaussian blur at 1% of the bone's
  length) inside the shaft's middle half, as a share of the profile's range (trabecular pattern
  and noise).
Distances are in shares of the bone's length, so films of any resolution compare; films whose
bones are under 60 px long are left out (their cortex is not resolved).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy.ndimage import map_coordinates

from matcher.hand_scheme import BONES
from training.protocol import markdown

SHAFTS = ("MC2", "MC3")
ACROSS = np.linspace(-0.3, 0.3, 61)  # shares of the bone's length
ALONG = np.linspace(0.4, 0.6, 9)
MIN_LENGTH_PX = 60
_ENDS = {b.name: (b.proximal, b.distal) for b in BONES}


def _frame(points: np.ndarray, bone: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    a, b = (points[i].astype(float) for i in _ENDS[bone])
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    length = float(np.linalg.norm(b - a))
    if length < MIN_LENGTH_PX:
        return None
    axis = (b - a) / length
    return a, axis, np.array([-axis[1], axis[0]]), length


def shaft_profile(image01: np.ndarray, points: np.ndarray, bone: str) -> np.ndarray | None:
    """The grey profile across `bone`'s shaft (len(ACROSS),), or None where it cannot be read."""
    frame = _frame(points, bone)
    if frame is None:
        return None
    a, axis, normal, length = frame
    centres = a[None] + (ALONG * length)[:, None] * axis[None]  # (K, 2)
    xy = centres[:, None, :] + (ACROSS * length)[None, :, None] * normal[None, None, :]  # (K, N, 2)
    values = map_coordinates(image01.astype(np.float32), [xy[..., 1].ravel(), xy[..., 0].ravel()], order=1, mode="nearest")
    return values.reshape(len(ALONG), len(ACROSS)).mean(axis=0)


def cortex_contrast(profile: np.ndarray) -> float:
    middle = len(profile) // 2
    centre = float(profile[middle - 2 : middle + 3].mean())
    left, right = float(profile[: middle - 2].max()), float(profile[middle + 3 :].max())
    return ((left + right) / 2 - centre) / max(float(profile.max() - profile.min()), 1e-6)


def shaft_texture(image01: np.ndarray, points: np.ndarray, bone: str, spread: float) -> float | None:
    frame = _frame(points, bone)
    if frame is None:
        return None
    a, axis, normal, length = frame
    fine = image01.astype(np.float32) - cv2.GaussianBlur(image01.astype(np.float32), (0, 0), max(0.01 * length, 0.5))
    s, t = np.meshgrid(np.linspace(0.25, 0.75, 25) * length, np.linspace(-0.04, 0.04, 7) * length)
    xy = a[None, None] + s[..., None] * axis + t[..., None] * normal
    values = map_coordinates(fine, [xy[..., 1].ravel(), xy[..., 0].ravel()], order=1, mode="nearest")
    return float(values.std()) / max(spread, 1e-6)


def film_measures(image: np.ndarray, points: np.ndarray) -> dict[str, float] | None:
    """The two measures of one film, averaged over the shafts read (None: none could be)."""
    image01 = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else float(max(image.max(), 1)))
    contrasts, textures = [], []
    for bone in SHAFTS:
        profile = shaft_profile(image01, points, bone)
        if profile is None:
            continue
        contrasts.append(cortex_contrast(profile))
        textures.append(shaft_texture(image01, points, bone, float(profile.max() - profile.min())))
    if not contrasts:
        return None
    return {"cortex_contrast": float(np.mean(contrasts)), "shaft_texture": float(np.mean(textures))}


def measures_of(paths: list[Path], find_points) -> pd.DataFrame:
    """Each readable film's measures; `find_points(image) -> (37, 2)` (the landmark model)."""
    rows = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        found = film_measures(image, find_points(image))
        if found is not None:
            rows.append(found)
    return pd.DataFrame(rows)


def shaft_lines(sets: dict[str, pd.DataFrame]) -> list[str]:
    def summary(values: pd.Series) -> str:
        q1, q2, q3 = np.percentile(values, [25, 50, 75])
        return f"{q2:.3f} [{q1:.3f}-{q3:.3f}]"

    rows = [[name, len(t), summary(t["cortex_contrast"]), summary(t["shaft_texture"])] for name, t in sets.items() if len(t)]
    return [
        "## Metacarpal shafts: cortex against medulla, and fine texture",
        "",
        "At mid-MC2 and mid-MC3 (landmarks from the landmark model on every film), median [quartiles]. Cortex contrast: how much "
        "brighter the cortices are than the medulla, as a share of the profile's range; texture: SD of the fine detail inside the shaft, same scale.",
        "",
        *markdown.table(["films", "read", "cortex contrast", "shaft texture"], rows),
    ]
