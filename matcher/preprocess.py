"""Deeplasia's preprocessing, reproduced exactly (DESIGN.md section 3).

Mask multiply; subtract the 1st percentile of the non-zero masked pixels (saturating,
like `cv2.subtract`); a square crop of side 2*(round(max(h, w) * 1.15) // 2) centred on
the mask's bounding box with zero padding; bilinear resize to the model's size (Deeplasia: 512 or 1024) on the integer
image; z-score over the whole resized image (float32, unbiased SD). The fixtures in
`../shared/fixtures/deeplasia/preprocess/` made by Deeplasia's own code are reproduced
bit for bit for the integer steps.

`CropTransform` keeps where the crop came from, so attention maps computed on the model
input can be drawn back onto the original radiograph.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from matcher.errors import MaskError

DEEPLASIA_CROP_FACTOR = 1.15
# 512 and 1024 are Deeplasia's; 256 and 384 serve small models (the CPU demo model).
SUPPORTED_SIZES = (256, 384, 512, 1024)


@dataclass(frozen=True)
class CropTransform:
    """The square crop (in original pixel coordinates, may extend past the image) and output size."""

    x0: int
    y0: int
    side: int
    output_size: int
    image_shape: tuple[int, int]

    @property
    def scale(self) -> float:
        """Output pixels per original pixel."""
        return self.output_size / self.side

    def to_original(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Model-input coordinates -> original image coordinates (pixel centres)."""
        return (np.asarray(x) + 0.5) / self.scale - 0.5 + self.x0, (np.asarray(y) + 0.5) / self.scale - 0.5 + self.y0

    def to_input(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Original image coordinates -> model-input coordinates."""
        return (np.asarray(x) - self.x0 + 0.5) * self.scale - 0.5, (np.asarray(y) - self.y0 + 0.5) * self.scale - 0.5

    def map_to_original(self, input_map: np.ndarray) -> np.ndarray:
        """Warp a map on the model input (S x S) back onto the original image grid (zeros outside)."""
        h, w = self.image_shape
        s = self.scale
        # original = input / s + (x0 - 0.5 + 0.5 / s): the forward map (input -> original)
        matrix = np.array([[1 / s, 0, self.x0 - 0.5 + 0.5 / s], [0, 1 / s, self.y0 - 0.5 + 0.5 / s]], np.float64)
        return cv2.warpAffine(
            input_map.astype(np.float32),
            matrix,
            (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )


@dataclass(frozen=True)
class DeeplasiaInput:
    """The model input (float32, 1 x S x S), its integer intermediates and the crop."""

    tensor: np.ndarray
    cropped: np.ndarray
    resized: np.ndarray
    transform: CropTransform
    percentile1: float


def binarise_mask(mask: np.ndarray) -> np.ndarray:
    """Deeplasia's rule: foreground is above half the mask's maximum; uint8 0/1."""
    if mask.dtype == bool:
        return mask.astype(np.uint8)
    return (mask > mask.max() // 2).astype(np.uint8) if mask.max() > 0 else np.zeros(mask.shape, np.uint8)


def mask_crop(mask01: np.ndarray, crop_factor: float = DEEPLASIA_CROP_FACTOR) -> tuple[int, int, int]:
    """(x0, y0, side) of Deeplasia's square crop around the mask's bounding box."""
    x_min, y_min, width, height = cv2.boundingRect(np.ascontiguousarray(mask01, dtype=np.uint8))  # of the non-zero pixels
    if width == 0 or height == 0:
        raise MaskError("no hand was found in the image (the hand mask is empty); check that the image shows a hand")
    x_max, y_max = x_min + width, y_min + height
    x_centre = x_min + (x_max - x_min) // 2
    y_centre = y_min + (y_max - y_min) // 2
    half = round(max(y_max - y_min, x_max - x_min) * crop_factor) // 2
    return x_centre - half, y_centre - half, 2 * half


def first_percentile_of_nonzero(image: np.ndarray) -> float:
    """np.percentile(image[image > 0], 1) (linear interpolation), from an integer histogram.

    Same value as numpy's, without partitioning a million pixels: find the two order
    statistics that numpy interpolates between from the cumulative histogram.
    """
    if image.dtype not in (np.uint8, np.uint16):
        values = image[image > 0]
        return float(np.percentile(values, 1)) if values.size else 0.0
    if image.size < 2**24:  # OpenCV's float32 bin counts are exact below 2**24 pixels
        bins = 256 if image.dtype == np.uint8 else 65536
        counts = cv2.calcHist([np.ascontiguousarray(image)], [0], None, [bins], [0, bins]).ravel().astype(np.int64)
    else:
        counts = np.bincount(image.ravel(), minlength=256)
    counts[0] = 0
    n = int(counts.sum())
    if n == 0:
        return 0.0
    position = 0.01 * (n - 1)
    low_rank, fraction = int(np.floor(position)), position - np.floor(position)
    cumulative = np.cumsum(counts)
    low = int(np.searchsorted(cumulative, low_rank + 1))
    high = int(np.searchsorted(cumulative, min(low_rank + 2, n)))
    return float(low + (high - low) * fraction)


def deeplasia_input(pixels: np.ndarray, mask: np.ndarray, size: int = 512, crop_factor: float = DEEPLASIA_CROP_FACTOR) -> DeeplasiaInput:
    """Deeplasia's model input from a greyscale image (uint8/uint16) and a hand mask."""
    if size not in SUPPORTED_SIZES:
        raise ValueError(f"input size must be one of {SUPPORTED_SIZES}, not {size}")
    if pixels.ndim != 2 or pixels.shape != mask.shape[:2]:
        raise ValueError(f"image {pixels.shape} and mask {mask.shape} must be 2-D and the same size")
    mask01 = binarise_mask(mask)
    masked = cv2.bitwise_and(pixels, pixels, mask=mask01)
    percentile = first_percentile_of_nonzero(masked)
    subtracted = cv2.subtract(masked, percentile)  # saturates at zero
    x0, y0, side = mask_crop(mask01, crop_factor)
    cropped = _crop_with_zero_padding(subtracted, x0, y0, side)
    resized = cv2.resize(cropped, (size, size), interpolation=cv2.INTER_LINEAR)
    values = resized.astype(np.float32)
    sd = values.std(ddof=1)
    tensor = ((values - values.mean()) / (sd if sd > 0 else 1.0)).astype(np.float32)[None]
    return DeeplasiaInput(tensor, cropped, resized, CropTransform(x0, y0, side, size, pixels.shape[:2]), percentile)


def _crop_with_zero_padding(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    h, w = image.shape
    top, left = max(0, -y0), max(0, -x0)
    bottom, right = max(0, y0 + side - h), max(0, x0 + side - w)
    padded = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)
    return padded[y0 + top : y0 + top + side, x0 + left : x0 + left + side]
