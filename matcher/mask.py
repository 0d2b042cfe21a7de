"""The hand mask: a small network shipped with the package, and a classical fallback.

Both return the hand and forearm as one filled region (Deeplasia keeps the largest filled
contour of its mask model's output thresholded at 0.25; so do we), excluding labels,
rulers, markers and the background. The network is used when its weights are present;
the classical mask needs only OpenCV and is also the network's sanity reference.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from matcher.hand_shape import looks_like_a_hand, outline_of

WEIGHTS = Path(__file__).with_name("weights") / "hand_mask.safetensors"
WORKING_SIDE = 512  # the classical mask works on a downscaled copy: fast and smooth
DEEPLASIA_THRESHOLD = 0.25

Method = Literal["auto", "network", "classical"]


@dataclass(frozen=True)
class HandMask:
    """uint8 0/255 mask at the image's resolution, and how it was made."""

    mask: np.ndarray
    method: str
    probability: np.ndarray | None = None  # the network's output at its working size


def largest_filled_component(binary: np.ndarray) -> np.ndarray:
    """The largest 8-connected component with its holes filled (uint8 0/1)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros(binary.shape, np.uint8)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    component = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(component)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    image = pixels.astype(np.float32)
    low, high = np.percentile(image, [0.5, 99.5])
    return np.clip((image - low) / max(float(high - low), 1e-6) * 255, 0, 255).astype(np.uint8)


def _wide_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A wide Gaussian blur computed on a copy 4x smaller (the result is smooth anyway)."""
    h, w = image.shape
    small = cv2.resize(image, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    return cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma / 4), (w, h), interpolation=cv2.INTER_LINEAR)


def _flatten_uniform_borders(image: np.ndarray) -> np.ndarray:
    """Collimation borders (uniform bright or dark bands at the edges) become background."""
    out = image.copy()
    h, w = image.shape
    background = int(np.median(image))
    for axis, size in ((0, h), (1, w)):
        for from_start in (True, False):
            for i in range(size // 8):
                index = i if from_start else size - 1 - i
                line = image[index, :] if axis == 0 else image[:, index]
                if line.std() > 6 or abs(int(np.median(line)) - background) < 25:
                    break
                if axis == 0:
                    out[index, :] = background
                else:
                    out[:, index] = background
    return out


def tissue_binary(pixels: np.ndarray) -> np.ndarray:
    """Everything brighter than its local background (hands, other objects), uint8 0/1.

    Works on a copy whose longer side is `WORKING_SIDE`: Otsu between background and
    tissue, then again against a local background interpolated around the first result
    (exposure gradients, a second field's shadow), and an opening that detaches blobs
    joined by thin bridges.
    """
    h, w = pixels.shape
    scale = WORKING_SIDE / max(h, w)
    # downscale first, then stretch: percentiles of the working copy are all the mask needs
    small = _to_uint8(cv2.resize(pixels, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA))
    small = _flatten_uniform_borders(small)
    blurred = cv2.GaussianBlur(small, (9, 9), 0)
    otsu, _ = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    below = blurred[blurred < otsu]
    background = float(np.median(below)) if below.size else 0.0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    first = cv2.morphologyEx((blurred > background + 0.4 * (otsu - background)).astype(np.uint8), cv2.MORPH_OPEN, kernel)
    outside = (cv2.dilate(first, kernel, iterations=3) == 0).astype(np.float32)
    sigma = max(small.shape) / 12
    local = _wide_blur(blurred.astype(np.float32) * outside, sigma)
    weight = _wide_blur(outside, sigma)
    local = np.where(weight > 1e-3, local / np.maximum(weight, 1e-3), background)
    binary = (blurred.astype(np.float32) - local > 0.4 * (otsu - background)).astype(np.uint8)
    return cv2.morphologyEx(binary, cv2.MORPH_OPEN, kernel)


def classical_hand_mask(pixels: np.ndarray) -> np.ndarray:
    """The largest filled tissue region at full resolution (uint8 0/255)."""
    h, w = pixels.shape
    mask = largest_filled_component(tissue_binary(pixels))
    return (cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST) * 255).astype(np.uint8)


class NetworkHandMasker:
    """The shipped U-Net. Loading is lazy and thread-safe; inference runs on the CPU."""

    def __init__(self, weights: Path = WEIGHTS) -> None:
        self.weights = weights
        self._model = None
        self._lock = threading.Lock()
        self.metadata: dict[str, str] = {}

    @property
    def available(self) -> bool:
        return self.weights.is_file()

    def _load(self):
        with self._lock:
            if self._model is None:
                from safetensors import safe_open
                from safetensors.torch import load_file

                from matcher.mask_net import HandMaskNet

                with safe_open(str(self.weights), framework="pt") as handle:
                    self.metadata = dict(handle.metadata() or {})
                model = HandMaskNet(tuple(json.loads(self.metadata.get("widths", "[8, 16, 32, 48]"))))
                model.load_state_dict(load_file(str(self.weights)))
                self._model = model.eval()
        return self._model

    def probability(self, pixels: np.ndarray) -> np.ndarray:
        """Per-pixel hand probability at the network's working size."""
        import torch

        from matcher.mask_net import network_input

        model = self._load()
        with torch.inference_mode():
            logits = model(torch.from_numpy(network_input(pixels))[None])
        return torch.sigmoid(logits)[0, 0].numpy()

    def __call__(self, pixels: np.ndarray) -> HandMask:
        prob = self.probability(pixels)
        h, w = pixels.shape
        # the component search runs at working resolution; the outline is then taken from
        # the probability at full resolution, restricted to that component
        scale = min(1.0, WORKING_SIDE / max(h, w))
        work = cv2.resize(prob, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_LINEAR)
        component = cv2.dilate(largest_filled_component(work > DEEPLASIA_THRESHOLD), np.ones((3, 3), np.uint8))
        full = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR) > DEEPLASIA_THRESHOLD
        keep = cv2.resize(component, (w, h), interpolation=cv2.INTER_NEAREST) > 0
        return HandMask(((full & keep) * 255).astype(np.uint8), "network", prob)


@lru_cache(maxsize=1)
def default_network() -> NetworkHandMasker:
    return NetworkHandMasker()


def _plausible(mask: np.ndarray) -> bool:
    """A hand-shaped outline covering a plausible share of the image (judged on a 256-px copy)."""
    h, w = mask.shape
    scale = 256 / max(h, w)
    small = cv2.resize(mask, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_NEAREST)
    return 0.03 <= float((small > 0).mean()) <= 0.9 and looks_like_a_hand(small)


def film_aware_classical_mask(pixels: np.ndarray) -> np.ndarray:
    """The classical mask; when it finds a filled block (a film photographed on a light box or
    scanned with its surroundings), the hand is looked for again inside that block."""
    mask = classical_hand_mask(pixels)
    if not mask.any() or outline_of(cv2.resize(mask, (256, 256), interpolation=cv2.INTER_NEAREST)).solidity < 0.9:
        return mask
    x, y, w, h = cv2.boundingRect(mask)
    inset_x, inset_y = max(1, w // 30), max(1, h // 30)
    inner = np.ascontiguousarray(pixels[y + inset_y : y + h - inset_y, x + inset_x : x + w - inset_x])
    if min(inner.shape) < 16:
        return mask
    out = np.zeros_like(mask)
    out[y + inset_y : y + h - inset_y, x + inset_x : x + w - inset_x] = classical_hand_mask(inner)
    return out if _plausible(out) else mask


def segment_hand(pixels: np.ndarray, method: Method = "auto") -> HandMask:
    """The hand mask of a greyscale radiograph.

    `auto`: the network when shipped; where its outline is not hand-shaped (no finger gaps,
    a filled block, a sliver) the classical mask is tried and kept if it is hand-shaped, so
    that an unsure network falls back instead of refusing the film.
    """
    if method == "classical" or (method == "auto" and not default_network().available):
        return HandMask(film_aware_classical_mask(pixels), "classical")
    if not default_network().available:
        raise FileNotFoundError(f"the hand-mask weights are missing ({WEIGHTS}); reinstall the package or use method='classical'")
    network = default_network()(pixels)
    if method == "network" or _plausible(network.mask):
        return network
    fallback = film_aware_classical_mask(pixels)
    return HandMask(fallback, "classical-fallback") if _plausible(fallback) else network


def install_mask_weights(source: Path, target: Path = WEIGHTS) -> None:
    """Make the hand-mask network in `source` (a .safetensors file of `matcher.mask_net.HandMaskNet`)
    the shipped one; it must load and run first, and replaces the old file by a rename."""
    import shutil

    from matcher.checkpoint import ModelFormatError

    candidate = NetworkHandMasker(Path(source))
    if not candidate.available:
        raise ModelFormatError(f"{source} does not exist; train one with scripts/train_hand_mask.py")
    try:
        candidate.probability(np.zeros((64, 64), dtype=np.uint8))
    except Exception as exc:  # any failure to load or run means the file is not a hand-mask network
        raise ModelFormatError(f"{source} is not a hand-mask network's weights: {exc}") from exc
    staged = target.with_suffix(".new")
    shutil.copyfile(source, staged)
    staged.replace(target)
