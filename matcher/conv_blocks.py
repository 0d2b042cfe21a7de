"""The convolution block the hand networks share (the mask U-Net, the landmark decoder)."""

from __future__ import annotations

from torch import nn


class DoubleConv(nn.Sequential):
    """Two 3 x 3 convolutions, each with batch norm and ReLU, at one resolution."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )
