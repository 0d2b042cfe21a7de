"""The 19 tubular bones measured from a hand's landmarks, as a size-free profile.

Film pixel spacing varies and is rarely known, so lengths in pixels are never compared across
films. A bone's log length is taken relative to the hand's own size: the mean log length of the
reference bones (those every annotated source measures: MC1 and the phalanges). Where a
reference bone is missing, the others stand in for it through each bone's typical share
(`offsets`, learnt with the norms), so a missing fingertip moves the size estimate little.
"""

from __future__ import annotations

import numpy as np

from matcher.hand_scheme import BONE_NAMES, BONES

REFERENCE_BONES = tuple(b for b in BONE_NAMES if b == "MC1" or not b.startswith("MC"))  # 15: MC1, PP1-5, MP2-5, DP1-5
REFERENCE = np.array([name in REFERENCE_BONES for name in BONE_NAMES])
MIN_REFERENCE = 10  # fewer reference bones found: no profile (the hand's size is not known well enough)


def bone_lengths(points: np.ndarray) -> np.ndarray:
    """(..., 37, 2) points -> (..., 19) joint-to-joint lengths in the same units (NaN where an end is missing)."""
    return np.stack([np.linalg.norm(points[..., b.distal, :] - points[..., b.proximal, :], axis=-1) for b in BONES], axis=-1)


def hand_size(log_lengths: np.ndarray, offsets: np.ndarray | None = None) -> float:
    """The hand's log size: the mean over the reference bones found of log length minus the bone's
    typical offset from that mean (`offsets`, zero when not given); NaN with too few found."""
    offsets = np.zeros(len(BONE_NAMES)) if offsets is None else offsets
    found = REFERENCE & np.isfinite(log_lengths)
    if found.sum() < MIN_REFERENCE:
        return float("nan")
    return float(np.mean(log_lengths[found] - offsets[found]))


def log_profile(lengths: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    """(19,) lengths -> (19,) log proportions: each bone's log length minus the hand's log size.
    All NaN when the size cannot be told; NaN for each bone that is missing."""
    return log_profiles(np.asarray(lengths, float)[None], offsets)[0]


def log_profiles(lengths: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    """(N, 19) lengths -> (N, 19) log proportions, `log_profile` of each hand at once (a gallery's cases)."""
    offsets = np.zeros(len(BONE_NAMES)) if offsets is None else offsets
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.where(lengths > 0, lengths, np.nan))
        found = REFERENCE & np.isfinite(logs)
        count = found.sum(axis=1)
        size = np.where(found, logs - offsets, 0.0).sum(axis=1) / np.maximum(count, 1)
    size[count < MIN_REFERENCE] = np.nan
    return logs - size[:, None]


def reference_offsets(profiles: np.ndarray) -> np.ndarray:
    """Each bone's mean log proportion over complete hands (rows of `log_profile` without offsets):
    the typical share that lets a hand with missing reference bones be sized like a whole one."""
    complete = np.isfinite(profiles[:, REFERENCE]).all(axis=1)
    if not complete.any():
        raise ValueError("no hand has all 15 reference bones measured; the offsets need whole hands")
    offsets = np.nanmean(profiles[complete], axis=0)
    return np.where(np.isfinite(offsets), offsets, 0.0)
