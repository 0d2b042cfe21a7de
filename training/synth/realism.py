"""Coarse image statistics that compare synthetic radiographs with real ones (tests/test_realism.py).

Computed the same way on any image: grey levels in [0, 1], inside an 8% margin (collimation
borders are common in CR), at 512 px height, Otsu split into hand and background.
"""

from __future__ import annotations

import cv2
import numpy as np

MARGIN = 0.08
HEIGHT = 512


def image_statistics(image01: np.ndarray) -> dict[str, float]:
    """Hand share, hand and background grey, fine texture inside the hand (x100) and the hand's dynamic range."""
    h, w = image01.shape
    image01 = image01[int(MARGIN * h) : int((1 - MARGIN) * h), int(MARGIN * w) : int((1 - MARGIN) * w)]
    h, w = image01.shape
    img = cv2.resize(image01.astype(np.float32), (int(HEIGHT * w / h), HEIGHT), interpolation=cv2.INTER_AREA)
    u8 = np.round(img * 255).astype(np.uint8)
    threshold, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    hand = u8 > threshold
    inner = cv2.erode(hand.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    high_pass = img - cv2.GaussianBlur(img, (0, 0), 3)
    return {
        "hand_fraction": float(hand.mean()),
        "hand_grey": float(img[hand].mean()),
        "background_grey": float(img[~hand].mean()),
        "fine_texture_x100": float(high_pass[inner].std() * 100),
        "hand_dynamic_range": float(np.percentile(img[hand], 99) - np.percentile(img[hand], 10)),
    }
