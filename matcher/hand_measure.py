"""A hand measured on its film: the 37 landmarks and the 19 bones with their pattern-profile z-scores.

This is the evidence a geneticist can check on the film: every bone length runs between two
points drawn on it, and every z-score compares the bone's share of the hand with unaffected
children of the same age and sex (`matcher.bone_norms`). Lengths are in the film's pixels (its
spacing is rarely known); proportions and z-scores are free of it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from matcher.bone_norms import BoneNorms, load_norms
from matcher.bone_profile import bone_lengths, log_profile
from matcher.frozen import Forward, frozen_for_cpu
from matcher.hand_indices import indices_json
from matcher.hand_scheme import BONE_NAMES, BONES
from matcher.landmark_files import landmark_model_available, load_landmark_model
from matcher.landmark_net import LandmarkNet
from matcher.landmarks import HandLandmarks, find_landmarks


def _rounded(value: float, digits: int) -> float | None:
    return None if not np.isfinite(value) else round(float(value), digits)


@dataclass(frozen=True)
class HandMeasurement:
    landmarks: HandLandmarks
    lengths_px: np.ndarray  # (19,)
    proportions: np.ndarray  # (19,) each bone's length over the hand's size (geometric mean of the reference bones)
    z: np.ndarray  # (19,) NaN where not measurable or outside the norms' ages

    def bones_json(self) -> list[dict]:
        return [
            {
                "bone": name,
                "length_px": _rounded(self.lengths_px[i], 1),
                "proportion": _rounded(self.proportions[i], 4),
                "z": _rounded(self.z[i], 2),
                "proximal": bone.proximal,
                "distal": bone.distal,
            }
            for i, (name, bone) in enumerate(zip(BONE_NAMES, BONES, strict=True))
        ]

    def to_json(self) -> dict:
        return {
            "landmarks": [p.to_json() for p in self.landmarks.as_list()],
            "bones": self.bones_json(),
            "indices": indices_json(self.landmarks.points),
        }


class HandMeasurer:
    """The landmark network and the norms, loaded once."""

    def __init__(self, network: LandmarkNet, norms: BoneNorms) -> None:
        """The network is stored channels-last (the faster layout on the CPU, as for the encoder)
        and frozen for inference on first use (`matcher.frozen`)."""
        import torch

        self.network, self.norms = network.eval().to(memory_format=torch.channels_last), norms
        self._forward: Forward | None = None

    def _find(self, films: list[np.ndarray]) -> list[HandLandmarks]:
        if self._forward is None:
            import torch

            size = self.network.config.view_size
            self._forward = frozen_for_cpu(self.network, torch.zeros(1, 1, size, size).to(memory_format=torch.channels_last))
        return find_landmarks(self.network, films, forward=self._forward)

    def measure(self, pixels: np.ndarray, age_months: float | None, sex: str | None) -> HandMeasurement:
        """`pixels`: the film, grey, bone bright (any scale)."""
        landmarks = self._find([pixels])[0]
        lengths = bone_lengths(landmarks.points.astype(float))
        proportions = np.exp(log_profile(lengths, self.norms.offsets))
        z = self.norms.z_scores(lengths, None if age_months is None else age_months / 12, sex)
        return HandMeasurement(landmarks, lengths, proportions, z)

    def landmarks_of(self, film: np.ndarray) -> HandLandmarks:
        """One film's landmarks (grey, bone bright, any scale): what the quality gate asks where the mask cannot judge."""
        return self._find([film])[0]

    def lengths_of(self, films: list[np.ndarray]) -> list[np.ndarray]:
        """Each film's 19 bone lengths in its pixels (NaN where not found), the landmarks found in
        batches: what a gallery stores of each case (its z-scores follow the gallery's norms)."""
        return [bone_lengths(found.points.astype(float)) for found in self._find(films)]


@functools.cache
def bundled_measurer() -> HandMeasurer | None:
    """The installed landmark model with the bundled norms, loaded once per process; None where no
    landmark model is installed (analyses then carry no landmarks)."""
    if not landmark_model_available():
        return None
    return HandMeasurer(load_landmark_model()[0], load_norms())
