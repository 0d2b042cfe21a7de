"""Domain randomisation: synthetic phantoms made to look like real exported films, then
reduced to film views (`matcher.film_view`) exactly as real films are.

Real films differ from our renderer in ways that have nothing to do with anatomy: exposure
and contrast, unsharpness, quantum noise, black, white or grey surroundings and borders,
how much of the frame the hand fills, JPEG compression. Each phantom gets a random draw of
all of these at its rendered resolution, before the nearest-neighbour reduction, so that
the model cannot tell a phantom from a film by anything but its bones.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from matcher.film_view import film_view
from matcher.io import read_radiograph


@dataclass(frozen=True)
class DomainConfig:
    gamma: tuple[float, float] = (0.6, 1.6)
    contrast: tuple[float, float] = (0.6, 1.3)
    background_shift: tuple[float, float] = (-0.5, 0.1)  # added outside the hand (darker or lighter surroundings)
    blur_sigma_px: tuple[float, float] = (0.0, 2.5)  # at the rendered resolution
    noise_sd: tuple[float, float] = (0.0, 0.04)
    border_probability: float = 0.4  # uniform black/white bands at edges
    max_border: float = 0.12  # of the side
    margin: tuple[float, float] = (0.0, 0.15)  # extra surroundings (the hand fills less of the frame)
    jpeg_probability: float = 0.3
    jpeg_quality: tuple[int, int] = (35, 90)


def randomise_film(image01: np.ndarray, mask: np.ndarray, rng: np.random.Generator, config: DomainConfig) -> np.ndarray:
    """One random real-looking export of a phantom (float in [0, 1] -> uint8)."""
    x = np.clip(image01, 0, 1) ** rng.uniform(*config.gamma)
    x = (x - x.mean()) * rng.uniform(*config.contrast) + x.mean()
    x = x + (mask == 0) * rng.uniform(*config.background_shift)
    sigma = rng.uniform(*config.blur_sigma_px)
    if sigma > 0.3:
        x = cv2.GaussianBlur(x.astype(np.float32), (0, 0), sigma)
    x = x + rng.normal(0, rng.uniform(*config.noise_sd), x.shape)
    x = _with_margin(np.clip(x, 0, 1), rng, config)
    if rng.random() < config.border_probability:
        x = _with_border(x, rng, config)
    out = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
    if rng.random() < config.jpeg_probability:
        quality = int(rng.integers(*config.jpeg_quality))
        out = cv2.imdecode(cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)
    return out


def _with_margin(x: np.ndarray, rng: np.random.Generator, config: DomainConfig) -> np.ndarray:
    h, w = x.shape
    pads = [int(rng.uniform(*config.margin) * s / 2) for s in (h, h, w, w)]
    return cv2.copyMakeBorder(x.astype(np.float32), pads[0], pads[1], pads[2], pads[3], cv2.BORDER_REPLICATE)


def _with_border(x: np.ndarray, rng: np.random.Generator, config: DomainConfig) -> np.ndarray:
    x = x.copy()
    h, w = x.shape
    value = float(rng.choice([0.0, 1.0, rng.uniform(0.3, 0.7)]))
    for side in np.flatnonzero(rng.random(4) < 0.5):
        band = int(rng.uniform(0.02, config.max_border) * (h if side < 2 else w))
        if side == 0:
            x[:band] = value
        elif side == 1:
            x[h - band :] = value
        elif side == 2:
            x[:, :band] = value
        else:
            x[:, w - band :] = value
    return x


def film_copy(image_path: Path, mask_path: Path, seed: int, config: DomainConfig) -> np.ndarray:
    """The 100-px film view (uint8) of one random real-looking export of a phantom and its mask."""
    radiograph = read_radiograph(Path(image_path))
    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    image01 = radiograph.pixels.astype(np.float32) / float(radiograph.max_value)
    exported = randomise_film(image01, mask, np.random.default_rng(seed), config)
    return film_view(exported)[0]


def _view_of_case(job: tuple[str, str, int, DomainConfig]) -> np.ndarray:
    return film_copy(Path(job[0]), Path(job[1]), job[2], job[3])


def synthetic_views(
    manifest: Path, copies: int = 1, seed: int = 0, workers: int = 0, config: DomainConfig | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """Film views (N * copies, 100, 100) of a synthetic cohort (with masks) and the matching manifest rows."""
    table = pd.read_csv(manifest)
    root = manifest.parent
    config = config or DomainConfig()
    rows = [(c, i) for c in range(copies) for i in range(len(table))]
    jobs = [(str(root / table["image"][i]), str(root / table["mask"][i]), seed * 1_000_003 + c * 100_003 + i, config) for c, i in rows]
    with ProcessPoolExecutor(workers or os.cpu_count() or 1) as pool:
        views = np.stack(list(pool.map(_view_of_case, jobs, chunksize=32)))
    return views, table.iloc[[i for _, i in rows]].reset_index(drop=True)
