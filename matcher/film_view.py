"""The film view: the whole radiograph as the 100-px RSNA copy shows it.

Our real training images (`../shared/rsna_100px`) are whole films reduced to 100 x 100
pixels by nearest-neighbour sampling, without keeping the aspect ratio. Reducing the 14
full-resolution originals in `../shared/real_hands_labelled` with Pillow's NEAREST (=
OpenCV's `INTER_NEAREST_EXACT`) reproduces their 100-px copies exactly (mean absolute
difference 0.0 grey levels; area, bilinear and Lanczos reductions differ by 0.7-2.6).
So a model trained on the copies sees any film the same way: reduce it to 100 x 100 with
that rule, then z-score. A full-resolution film and its 100-px copy give the same input,
bit for bit, and so the same answer.

The one exception is a landscape frame with a narrow hand (e.g. a hand in a third of
the width): squashing it would make the hand far narrower than in any training film, so
the frame is first cut to a portrait window around the hand with the RSNA films' usual
proportions (width 0.74 of the height). Training films (square 100-px copies) never
trigger it, so the training distribution is untouched.

No hand mask multiplies the view: the RSNA copies carry their surroundings (labels,
markers, film edges) and the model learns to read past them; the mask only places the
portrait window and feeds the quality gate.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FILM_SIDE = 100  # the RSNA copy's side
PORTRAIT_WIDTH = 0.74  # width / height of a typical RSNA film (1514 x 2044)
LANDSCAPE = 1.1  # a frame this much wider than tall is landscape
NARROW_HAND = 0.4  # ...and its hand narrow when the mask spans less of the width than this (RSNA landscape films: >= 0.43)


@dataclass(frozen=True)
class FilmTransform:
    """Where the film view came from: a window (x0, x1) of the image's columns, all rows."""

    image_shape: tuple[int, int]
    x0: int
    x1: int
    output_size: int

    def map_to_original(self, input_map: np.ndarray) -> np.ndarray:
        """Warp a map on the model input back onto the original image grid (zeros outside the window)."""
        h, w = self.image_shape
        out = np.zeros((h, w), np.float32)
        out[:, self.x0 : self.x1] = cv2.resize(input_map.astype(np.float32), (self.x1 - self.x0, h), interpolation=cv2.INTER_LINEAR)
        return out


@dataclass(frozen=True)
class FilmInput:
    """The model input (float32, 1 x S x S), the 8-bit film view and its transform."""

    tensor: np.ndarray
    view: np.ndarray
    transform: FilmTransform


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """8-bit images stay as they are (the RSNA copies are 8-bit); deeper ones are stretched
    between their 0.5th and 99.5th percentiles, as a viewer's default window would."""
    if pixels.dtype == np.uint8:
        return pixels
    image = pixels.astype(np.float32)
    low, high = np.percentile(image[::4, ::4], [0.5, 99.5])
    return np.clip((image - low) / max(float(high - low), 1e-6) * 255 + 0.5, 0, 255).astype(np.uint8)


def portrait_window(image_shape: tuple[int, int], mask: np.ndarray | None) -> tuple[int, int]:
    """Columns (x0, x1) of the frame to keep: the whole width unless the frame is landscape
    and the hand narrow, then a portrait window centred on the hand."""
    h, w = image_shape
    if mask is None or w <= LANDSCAPE * h or not mask.any():
        return 0, w
    x, _, bw, _ = cv2.boundingRect(np.ascontiguousarray(mask > 0, dtype=np.uint8))
    if bw >= NARROW_HAND * w:
        return 0, w
    width = min(w, max(round(PORTRAIT_WIDTH * h), round(1.15 * bw)))
    x0 = int(np.clip(x + bw // 2 - width // 2, 0, w - width))
    return x0, x0 + width


def film_view(pixels: np.ndarray, mask: np.ndarray | None = None, side: int = FILM_SIDE) -> tuple[np.ndarray, FilmTransform]:
    """The 8-bit `side` x `side` nearest-neighbour view of the film (see the module's note)."""
    if pixels.ndim != 2:
        raise ValueError(f"a greyscale image is needed, not an array of shape {pixels.shape}")
    if mask is not None and mask.shape[:2] != pixels.shape:
        raise ValueError(f"image {pixels.shape} and mask {mask.shape} must be the same size")
    x0, x1 = portrait_window(pixels.shape, mask)
    window = to_uint8(pixels[:, x0:x1])
    view = cv2.resize(np.ascontiguousarray(window), (side, side), interpolation=cv2.INTER_NEAREST_EXACT)
    return view, FilmTransform(pixels.shape, x0, x1, side)


def zscore_view(view: np.ndarray, size: int) -> np.ndarray:
    """(1, size, size) float32 model input: resized when the model's side is not the view's, then z-scored."""
    image = view if view.shape[0] == size else cv2.resize(view, (size, size), interpolation=cv2.INTER_LINEAR)
    values = image.astype(np.float32)
    sd = values.std(ddof=1)
    return ((values - values.mean()) / (sd if sd > 0 else 1.0)).astype(np.float32)[None]


def film_input(pixels: np.ndarray, mask: np.ndarray | None, size: int = FILM_SIDE) -> FilmInput:
    """The model input of a film-view model for one radiograph."""
    view, transform = film_view(pixels, mask)
    return FilmInput(zscore_view(view, size), view, FilmTransform(transform.image_shape, transform.x0, transform.x1, size))
