"""Hand landmarks on a film: the 37 atlas points (`matcher.hand_scheme`) in the film's own pixels.

The film is letterboxed into the landmark network's square view (its aspect ratio kept), the
network's heatmaps are decoded (`matcher.landmark_net.decode_points`) and the points are mapped
back to the film's pixels. A point whose confidence is below the model's threshold is reported
missing (no coordinates): a missing finger or a cut-off hand must not be measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from matcher.frozen import Forward
from matcher.hand_scheme import ATLAS_SCHEME, LANDMARK_NAMES
from matcher.landmark_net import LandmarkNet, decode_points

MISSING_BELOW = 0.3  # a point with less confidence (probability mass at its peak) is reported missing


def letterbox_matrix(shape: tuple[int, int], size: int) -> np.ndarray:
    """The 2 x 3 affine matrix that fits a (H, W) film centred into a size x size view."""
    height, width = shape
    scale = size / max(height, width)
    return np.array([[scale, 0, (size - scale * width) / 2], [0, scale, (size - scale * height) / 2]], np.float64)


def normalise_view(view: np.ndarray) -> np.ndarray:
    """Grey levels by the 1st-99th percentile range, to about -2..2 (film to film, exposures differ);
    the same for any scale of grey (8-bit, 16-bit, 0-1), so a film reads alike however it was stored."""
    low, high = np.percentile(view, (1, 99))
    span = float(high - low)
    span = span if span > 1e-6 * max(abs(float(high)), 1e-12) else 1.0  # a flat view stays flat
    return (((view.astype(np.float32) - low) / span - 0.5) / 0.25).astype(np.float32)


@dataclass(frozen=True)
class Landmark:
    index: int
    name: str
    x: float | None  # film pixels; None when missing
    y: float | None
    confidence: float

    def to_json(self) -> dict:
        return {"index": self.index, "name": self.name, "x": self.x, "y": self.y, "confidence": round(self.confidence, 3)}


@dataclass(frozen=True)
class HandLandmarks:
    points: np.ndarray  # (37, 2) film pixels, NaN where missing
    confidence: np.ndarray  # (37,)

    def as_list(self) -> list[Landmark]:
        return [
            Landmark(
                i, LANDMARK_NAMES[i], *((None, None) if np.isnan(p).any() else (round(float(p[0]), 1), round(float(p[1]), 1))), float(c)
            )
            for i, (p, c) in enumerate(zip(self.points, self.confidence, strict=True))
        ]


def film_view(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The normalised square view of a grey film (any bit depth) and its letterbox matrix."""
    grey = image.astype(np.float32)
    matrix = letterbox_matrix(grey.shape[:2], size)
    view = cv2.warpAffine(grey, matrix, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return normalise_view(view), matrix


@torch.inference_mode()
def find_landmarks(
    network: LandmarkNet,
    images: list[np.ndarray],
    threshold: float = MISSING_BELOW,
    forward: Forward | None = None,
    scheme: str = ATLAS_SCHEME,
) -> list[HandLandmarks]:
    """The landmarks of grey films (bone bright), each in its own pixels (`forward`: the network
    frozen for inference, `matcher.frozen`; the network itself when not given). `scheme` reads
    a foreign annotation scheme's channels instead of the atlas's (for measuring the model on
    films annotated in it); the atlas points it does not mark are missing."""
    network = network.eval()
    device = next(network.parameters()).device
    size = network.config.view_size
    where, atlas_points = network.config.scheme_channels(scheme)
    marked = list(atlas_points)
    views, matrices = zip(*(film_view(image, size) for image in images), strict=True) if images else ((), ())
    found = []
    channels_last = next(network.parameters()).is_contiguous(memory_format=torch.channels_last)
    for start in range(0, len(views), 8):
        batch = torch.from_numpy(np.stack(views[start : start + 8])[:, None]).to(device)
        if channels_last:
            batch = batch.to(memory_format=torch.channels_last)
        points, confidence = decode_points((forward or network)(batch)[:, where], network.config.peak_radius)
        for p, c, matrix in zip(points.cpu().numpy(), confidence.cpu().numpy(), matrices[start : start + 8], strict=True):
            film = np.full((len(LANDMARK_NAMES), 2), np.nan, np.float32)
            sure = np.zeros(len(LANDMARK_NAMES), np.float32)
            film[marked] = (p - matrix[:, 2]) / np.diag(matrix[:, :2])  # undo the letterbox (scale, shift)
            sure[marked] = c
            film[sure < threshold] = np.nan
            found.append(HandLandmarks(film, sure))
    return found
