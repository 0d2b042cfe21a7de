"""Contact sheets: tiles of radiographs with captions, for looking at a cohort by eye."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from matcher.io import read_radiograph

TILE_HEIGHT = 300


def load_grey(path: Path) -> np.ndarray:
    """Any radiograph the reader accepts, as float32 in [0, 1] (bone bright)."""
    return read_radiograph(path).normalised()


def tile(image01: np.ndarray, caption: str, height: int = TILE_HEIGHT) -> np.ndarray:
    """One 8-bit tile of a fixed height with a caption bar underneath."""
    h, w = image01.shape
    width = max(1, round(w * height / h))
    small = cv2.resize((np.clip(image01, 0, 1) * 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_AREA)
    bar = np.full((22, width), 255, np.uint8)
    for i, line in enumerate([caption[:40]]):
        cv2.putText(bar, line, (4, 15 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.42, 0, 1, cv2.LINE_AA)
    return np.vstack([small, bar])


def grid(tiles: Sequence[np.ndarray], columns: int, title: str | None = None) -> np.ndarray:
    """Tiles of equal height in rows of `columns`, padded white; optional title bar."""
    width = max(t.shape[1] for t in tiles)
    padded = [np.pad(t, ((0, 0), (0, width - t.shape[1])), constant_values=255) for t in tiles]
    rows = []
    for start in range(0, len(padded), columns):
        row = padded[start : start + columns]
        row += [np.full_like(padded[0], 255)] * (columns - len(row))
        rows.append(np.hstack([np.pad(t, ((4, 4), (4, 4)), constant_values=255) for t in row]))
    sheet = np.vstack(rows)
    if title:
        bar = np.full((34, sheet.shape[1]), 255, np.uint8)
        cv2.putText(bar, title, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 0, 2, cv2.LINE_AA)
        sheet = np.vstack([bar, sheet])
    return sheet


def cohort_contact_sheet(cohort_dir: Path, manifest: pd.DataFrame, out: Path, columns: int = 6) -> None:
    """One image per disorder (the first in the manifest), captioned with disorder, sex and age."""
    tiles = []
    for _, row in manifest.drop_duplicates("disorder").sort_values("disorder").iterrows():
        caption = f"{row['disorder']} {row['sex']} {row['age_months'] / 12:.1f}y"
        tiles.append(tile(load_grey(cohort_dir / str(row["image"])), caption))
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), grid(tiles, columns))
