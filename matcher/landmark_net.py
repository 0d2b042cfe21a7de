"""The hand landmark network: heatmaps of the 37 atlas points (`matcher.hand_scheme`) on a square film view.

Why heatmaps with a spatial softmax: a point is where the probability mass is, read to a fraction
of a cell by the mass-weighted mean around the peak, and how concentrated that mass is says how
sure the network is. A point that is not on the film (a missing finger, a cut-off hand) spreads
its mass and reads as unsure, so it is reported missing instead of being invented.

The encoder is timm's `efficientnet_lite0` (ImageNet start from `matcher.imagenet_weights`), its
stride 4-32 features merged top-down to stride 4, where the heatmaps are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch import nn

from matcher.conv_blocks import DoubleConv
from matcher.hand_scheme import ATLAS_SCHEME, FOREIGN_SCHEMES, N_LANDMARKS

STRIDE = 4  # input pixels per heatmap cell
ABSENT = -1.0e4  # a training point known not to be on the view (cut off, outside): its target is a flat map


@dataclass(frozen=True)
class LandmarkNetConfig:
    input_size: int = 512  # the square view's side: 1024-px films are read at half size
    backbone: str = "efficientnet_lite0"
    decoder_channels: int = 64
    n_landmarks: int = N_LANDMARKS
    peak_radius: int = 3  # cells around the peak whose mass is the point's confidence and position
    # the view side films are read at in use (None: input_size): the network is fully convolutional
    # and trained on rescaled views, so a smaller view trades a little accuracy for time
    read_size: int | None = None
    # foreign annotation schemes (`matcher.hand_scheme.FOREIGN_SCHEMES`) with channels of their own
    # after the atlas's: films annotated in them teach those, not the atlas's points
    foreign_schemes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "foreign_schemes", tuple(self.foreign_schemes))  # a card's JSON list
        unknown = [s for s in self.foreign_schemes if s not in FOREIGN_SCHEMES]
        if unknown:
            raise ValueError(f"unknown annotation scheme(s) {unknown}; known: {sorted(FOREIGN_SCHEMES)}")

    @property
    def view_size(self) -> int:
        return self.read_size or self.input_size

    @property
    def channels(self) -> int:
        return self.n_landmarks + sum(len(FOREIGN_SCHEMES[s]) for s in self.foreign_schemes)

    def scheme_channels(self, scheme: str = ATLAS_SCHEME) -> tuple[slice, tuple[int, ...]]:
        """Where `scheme`'s points are among the heatmaps, and which atlas points they are."""
        if scheme == ATLAS_SCHEME:
            return slice(0, self.n_landmarks), tuple(range(self.n_landmarks))
        if scheme not in self.foreign_schemes:
            raise ValueError(
                f"this landmark model has no channels for the {scheme!r} scheme (it has: {[ATLAS_SCHEME, *self.foreign_schemes]})"
            )
        before = self.foreign_schemes[: self.foreign_schemes.index(scheme)]
        start = self.n_landmarks + sum(len(FOREIGN_SCHEMES[s]) for s in before)
        return slice(start, start + len(FOREIGN_SCHEMES[scheme])), FOREIGN_SCHEMES[scheme]

    def scheme_targets(self, points: np.ndarray, scheme: str) -> np.ndarray:
        """A film's atlas-indexed points (37, 2) as targets for every channel (channels, 2): its
        own scheme's channels get them, every other channel is unknown (NaN)."""
        where, atlas_points = self.scheme_channels(scheme)
        targets = np.full((self.channels, 2), np.nan, np.float32)
        targets[where] = points[list(atlas_points)]
        return targets

    def to_json(self) -> dict:
        return asdict(self)


class LandmarkNet(nn.Module):
    def __init__(self, config: LandmarkNetConfig, imagenet: bool = False) -> None:
        super().__init__()
        self.config = config
        self.encoder = timm.create_model(config.backbone, pretrained=False, features_only=True, out_indices=(1, 2, 3, 4), in_chans=1)
        if imagenet:
            from matcher.imagenet_weights import load_lite_imagenet

            load_lite_imagenet(self.encoder, "lite0", in_chans=1)
        width = config.decoder_channels
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in self.encoder.feature_info.channels())
        self.smooth = DoubleConv(width, width)
        self.head = nn.Conv2d(width, config.channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) normalised views -> (B, channels, S/4, S/4) heatmap logits: the atlas's 37
        points, then each foreign scheme's (`LandmarkNetConfig.scheme_channels`)."""
        features = self.encoder(x)
        y = self.lateral[-1](features[-1])
        for feature, lateral in zip(reversed(features[:-1]), reversed(self.lateral[:-1]), strict=True):
            y = F.interpolate(y, size=feature.shape[-2:], mode="bilinear", align_corners=False) + lateral(feature)
        return self.head(self.smooth(y))


def heatmap_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Each landmark's logits as a probability map over the cells (softmax over space)."""
    b, n, h, w = logits.shape
    return logits.flatten(2).softmax(dim=-1).view(b, n, h, w)


def decode_points(logits: torch.Tensor, radius: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Points (B, L, 2) as x, y in view pixels and their confidence (B, L): the probability mass
    within `radius` cells of the peak, and its weighted mean there."""
    probability = heatmap_probabilities(logits.float())
    b, n, h, w = probability.shape
    peak = probability.flatten(2).argmax(dim=-1)
    py, px = peak // w, peak % w
    offsets = torch.arange(-radius, radius + 1, device=logits.device)
    ys = (py[..., None] + offsets).clamp(0, h - 1)  # (B, L, K)
    xs = (px[..., None] + offsets).clamp(0, w - 1)
    window = probability.flatten(0, 1)[
        torch.arange(b * n, device=logits.device)[:, None, None], ys.flatten(0, 1)[:, :, None], xs.flatten(0, 1)[:, None, :]
    ]
    window = window.view(b, n, len(offsets), len(offsets))
    mass = window.sum(dim=(-1, -2))
    y = (window.sum(dim=-1) * ys).sum(-1) / mass.clamp_min(1e-12)
    x = (window.sum(dim=-2) * xs).sum(-1) / mass.clamp_min(1e-12)
    cells = torch.stack([x, y], dim=-1)
    return (cells + 0.5) * STRIDE - 0.5, mass


def heatmap_targets(points: torch.Tensor, size: int, sigma: float = 1.5) -> torch.Tensor:
    """Normalised Gaussian maps (B, L, size/4, size/4) around view-pixel `points` (B, L, 2);
    unknown points (NaN) give all-zero maps, which the loss leaves out, and absent ones (`ABSENT`)
    flat maps: the network learns to spread a point it cannot see, which reads as unsure."""
    cells = size // STRIDE
    grid = torch.arange(cells, dtype=torch.float32, device=points.device)
    absent = (points == ABSENT).all(dim=-1)
    centre = (points + 0.5) / STRIDE - 0.5
    known = torch.isfinite(centre).all(dim=-1) & ~absent
    centre = torch.nan_to_num(centre)
    gx = torch.exp(-((grid - centre[..., 0:1]) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((grid - centre[..., 1:2]) ** 2) / (2 * sigma**2))
    maps = gy[..., :, None] * gx[..., None, :]
    maps = maps / maps.sum(dim=(-1, -2), keepdim=True).clamp_min(1e-12)
    return maps * known[..., None, None] + absent[..., None, None] / cells**2


def heatmap_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each known landmark's target distribution against its spatial softmax,
    averaged over the known ones."""
    log_p = logits.float().flatten(2).log_softmax(dim=-1)
    t = targets.flatten(2)
    known = t.sum(dim=-1) > 0
    per_point = -(t * log_p).sum(dim=-1)
    return per_point[known].mean() if known.any() else logits.sum() * 0.0
