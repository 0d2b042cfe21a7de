"""PNG pictures the service hands out: thumbnails and the attention overlay (display only)."""

from __future__ import annotations

import cv2
import numpy as np

from matcher.analysis import attention_overlay

OVERLAY_SIDE = 768


def png_bytes(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def thumbnail(pixels: np.ndarray, side: int = 384) -> np.ndarray:
    """An 8-bit thumbnail (longer side `side`), for display only."""
    image = pixels.astype(np.float32) / (255.0 if pixels.dtype == np.uint8 else 65535.0)
    h, w = image.shape
    scale = min(1.0, side / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return (np.clip(small, 0, 1) * 255).astype(np.uint8)


def overlay_png(display01: np.ndarray, attention: np.ndarray) -> bytes:
    """The attention map drawn on the radiograph, longer side at most OVERLAY_SIDE."""
    overlay = attention_overlay(display01, attention)
    h, w = overlay.shape[:2]
    scale = min(1.0, OVERLAY_SIDE / max(h, w))
    return png_bytes(cv2.resize(overlay, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA))
