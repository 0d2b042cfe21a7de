"""Batch augmentation on the training device, then Deeplasia's z-score.

Crops arrive as uint8 (B, S, S). Geometry (rotation, scale, shift, mirror) is one
`affine_grid` + `grid_sample` per batch, so it runs on the GPU with the model instead of
in CPU workers; intensity jitter (contrast, brightness, gamma) follows. Deeplasia's
test-time augmentation rotates by up to 10 degrees and mirrors, so training covers that
range. The z-score over the whole image comes last, exactly as `deeplasia_input` does it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    rotation_deg: float = 15.0
    scale: tuple[float, float] = (0.88, 1.12)
    shift: float = 0.05  # fraction of the image side
    mirror_probability: float = 0.5
    contrast: tuple[float, float] = (0.75, 1.3)
    brightness: float = 0.08  # of the full range
    gamma: tuple[float, float] = (0.75, 1.35)


def zscore(images: torch.Tensor) -> torch.Tensor:
    """Per-image z-score over all pixels (unbiased SD), as Deeplasia normalises its input."""
    flat = images.flatten(1)
    mean = flat.mean(dim=1)
    sd = flat.std(dim=1).clamp_min(1e-6)
    return (images - mean.view(-1, 1, 1, 1)) / sd.view(-1, 1, 1, 1)


def to_model_input(crops: torch.Tensor) -> torch.Tensor:
    """uint8 (B, S, S) -> z-scored float (B, 1, S, S), no augmentation (validation)."""
    return zscore(crops.float().unsqueeze(1))


def random_affine(
    b: int,
    rotation_deg: float,
    scale: tuple[float, float],
    shift: float,
    mirror_probability: float,
    device: torch.device,
    generator: torch.Generator | None = None,
    aspect: tuple[float, float] = (1.0, 1.0),
) -> torch.Tensor:
    """(B, 2, 3) `affine_grid` matrices: rotation, scale (x and y apart by `aspect`), shift, mirror."""

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(b, generator=generator, device=device) * (high - low) + low

    angle = uniform(-rotation_deg, rotation_deg) * (math.pi / 180)
    zoom, stretch = uniform(*scale), uniform(*aspect).sqrt()
    mirror = torch.where(torch.rand(b, generator=generator, device=device) < mirror_probability, -1.0, 1.0)
    sx, sy = 1 / (zoom * stretch), stretch / zoom
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) * sx * mirror, -torch.sin(angle) * sy
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) * sx * mirror, torch.cos(angle) * sy
    theta[:, 0, 2] = uniform(-2 * shift, 2 * shift)
    theta[:, 1, 2] = uniform(-2 * shift, 2 * shift)
    return theta


def augment(crops: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (B, S, S) on any device -> augmented, z-scored float (B, 1, S, S)."""
    device = crops.device
    b = crops.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(b, generator=generator, device=device) * (high - low) + low

    x = crops.float().unsqueeze(1) / 255.0
    theta = random_affine(b, config.rotation_deg, config.scale, config.shift, config.mirror_probability, device, generator)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    tissue = x > 0
    gamma = uniform(*config.gamma).view(-1, 1, 1, 1)
    x = x.clamp_min(0).pow(gamma)
    contrast = uniform(*config.contrast).view(-1, 1, 1, 1)
    brightness = uniform(-config.brightness, config.brightness).view(-1, 1, 1, 1)
    x = torch.where(tissue, (x * contrast + brightness).clamp(0, 1), x)  # background stays zero, as after masking
    return zscore(x)
