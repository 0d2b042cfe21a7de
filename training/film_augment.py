"""Batch augmentation of film views on the training device, then the z-score.

Film views (`matcher.film_view`) keep the film's surroundings, so geometry pads by
replicating the border (not with zeros, as Deeplasia's masked crops do), and intensity
changes apply to the whole view. Beyond rotation, scale, shift and mirroring (left and
right hands), the aspect ratio is jittered: the RSNA copies squash every film to a square,
by a factor that depends on the film's own proportions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from training.augment import random_affine, zscore


@dataclass(frozen=True)
class FilmAugmentConfig:
    rotation_deg: float = 15.0
    scale: tuple[float, float] = (0.85, 1.15)
    aspect: tuple[float, float] = (0.8, 1.25)
    shift: float = 0.06
    mirror_probability: float = 0.5
    contrast: tuple[float, float] = (0.75, 1.3)
    brightness: float = 0.08
    gamma: tuple[float, float] = (0.7, 1.4)


def augment_views(views: torch.Tensor, config: FilmAugmentConfig, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (B, V, V) -> augmented, z-scored float (B, 1, size, size)."""
    device = views.device
    b = views.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(b, generator=generator, device=device) * (high - low) + low

    x = views.float().unsqueeze(1) / 255.0
    theta = random_affine(b, config.rotation_deg, config.scale, config.shift, config.mirror_probability, device, generator, config.aspect)
    grid = F.affine_grid(theta, [b, 1, size, size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = x.clamp(0, 1).pow(uniform(*config.gamma).view(-1, 1, 1, 1))
    x = x * uniform(*config.contrast).view(-1, 1, 1, 1) + uniform(-config.brightness, config.brightness).view(-1, 1, 1, 1)
    return zscore(x.clamp(0, 1))


def views_to_input(views: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (B, V, V) -> z-scored float (B, 1, size, size), no augmentation (validation, inference)."""
    x = views.float().unsqueeze(1)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return zscore(x)
