"""Training data: a case manifest (DESIGN.md section 2) turned into model-ready crops.

Every image is read, masked (the manifest's `mask` column when the cohort has one, the
hand segmenter otherwise), and put through Deeplasia's crop and resize once; the integer
crops are cached in one `.npz` beside the manifest, so epochs cost only augmentation and
the forward pass. The z-score is not cached: it comes after augmentation, as at inference.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from matcher.io import read_radiograph
from matcher.manifest import ManifestError, read_case_manifest
from matcher.mask import segment_hand
from matcher.preprocess import deeplasia_input


def read_manifest(path: Path) -> pd.DataFrame:
    """The manifest, checked (`matcher.manifest`); training needs a diagnosis or '' per case."""
    return read_case_manifest(path)


@dataclass
class CropCache:
    """Cached crops (N, S, S) uint8 and the labels that go with them."""

    crops: np.ndarray
    table: pd.DataFrame
    size: int

    def __len__(self) -> int:
        return len(self.table)


def _prepare_one(args: tuple[str, str | None, int]) -> np.ndarray:
    image_path, mask_path, size = args
    radiograph = read_radiograph(Path(image_path))
    if mask_path:
        mask = cv2.imread(mask_path, cv2.IMREAD_GRAYSCALE)
        if mask is None or mask.shape != radiograph.pixels.shape:
            raise ManifestError(f"mask {mask_path} is missing or does not match {image_path}")
    else:
        mask = segment_hand(radiograph.pixels).mask
    resized = deeplasia_input(radiograph.pixels, mask, size=size).resized
    if resized.dtype == np.uint16:
        resized = (resized.astype(np.float32) / 257.0).round().astype(np.uint8)
    return resized


def prepare(manifest_path: Path, size: int, workers: int = 0, cache: bool = True) -> CropCache:
    """Crops for every case of the manifest at `size` px (cached as `<manifest>.<size>.npz`)."""
    table = read_manifest(manifest_path)
    cache_path = manifest_path.with_suffix(f".{size}.npz")
    if cache and cache_path.is_file() and cache_path.stat().st_mtime >= manifest_path.stat().st_mtime:
        stored = np.load(cache_path, allow_pickle=False)
        if list(stored["case_id"]) == list(table["case_id"]):
            return CropCache(stored["crops"], table, size)
    root = manifest_path.parent
    has_masks = "mask" in table.columns
    jobs = [
        (str(root / image), str(root / mask) if has_masks and isinstance(mask, str) and mask else None, size)
        for image, mask in zip(table["image"], table["mask"] if has_masks else [None] * len(table), strict=True)
    ]
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        crops = [_prepare_one(job) for job in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            crops = list(pool.map(_prepare_one, jobs, chunksize=16))
    stacked = np.stack(crops)
    if cache:
        tmp = cache_path.with_suffix(".tmp.npz")
        np.savez(tmp, crops=stacked, case_id=table["case_id"].to_numpy(dtype=str))
        os.replace(tmp, cache_path)
    return CropCache(stacked, table, size)
