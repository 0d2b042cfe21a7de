"""A small U-Net that segments the hand and forearm on a radiograph.

Small on purpose (about 0.1 M parameters, a file of a few hundred KB shipped in the package): the
mask only has to find the hand's outline, and it runs on every query before the
encoder. Trained by `scripts/train_hand_mask.py` on the synthetic cohort.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from matcher.conv_blocks import DoubleConv

INPUT_SIZE = 192  # enough for an outline; keeps training and inference cheap on CPUs


class HandMaskNet(nn.Module):
    """Encoder-decoder with skip connections; outputs one logit per pixel."""

    def __init__(self, widths: tuple[int, ...] = (8, 16, 32, 48)) -> None:
        super().__init__()
        self.widths = widths
        self.down = nn.ModuleList()
        c_in = 1
        for width in widths:
            self.down.append(DoubleConv(c_in, width))
            c_in = width
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(c_in, width, 2, stride=2))
            self.fuse.append(DoubleConv(2 * width, width))
            c_in = width
        self.head = nn.Conv2d(c_in, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = self.pool(x)
        for up, fuse in zip(self.up, self.fuse, strict=True):
            x = up(x)
            x = fuse(torch.cat([x, skips.pop()], dim=1))
        return self.head(x)


def network_input(pixels: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Resize to size x size and normalise by robust percentiles (float32, 1 x S x S)."""
    # resize the integer image first: converting the full-resolution image to float is the slow part
    image = cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    low, high = np.percentile(image, [1.0, 99.0])
    scaled = (image - low) / max(float(high - low), 1e-6)
    return ((np.clip(scaled, -0.5, 1.5) - 0.5) / 0.25).astype(np.float32)[None]
