"""Real radiographs for training: the RSNA bone-age training set at 100 px (`../shared/rsna_100px`).

Every image is already a film view (`matcher.film_view`: the whole film reduced to 100 x 100
by nearest neighbour), so it is read as it is. Labels: bone age in months (the challenge's
raters) and sex. No diagnoses: these children were referred for bone-age assessment.

The validation split is fixed by id (`is_validation_id`: every id divisible by 20, 631 of
12,611 films) so that every run, test and benchmark holds out the same films. The ids of
the 14 full-resolution films in `../shared/real_hands_labelled` are never trained on either:
they are reported at full resolution.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from matcher.manifest import ManifestError

VALIDATION_MODULUS = 20


DEV_REMAINDER = 10  # ids with id % 20 == 10: development films for choosing an encoder fine-tune, never trained on by one


def is_validation_id(image_id: int | np.ndarray) -> bool | np.ndarray:
    """The fixed held-out rule for `rsna_100px`: ids divisible by 20."""
    return np.asarray(image_id) % VALIDATION_MODULUS == 0


def is_dev_id(image_id: int | np.ndarray) -> bool | np.ndarray:
    """Development films of `rsna_100px`: for choosing (read by studies under experiments/), never reported."""
    return np.asarray(image_id) % VALIDATION_MODULUS == DEV_REMAINDER


def reported_ids(labelled: Path) -> frozenset[int]:
    """Ids of the full-resolution films reported on their own (`real_hands_labelled`): never trained on;
    none when the folder has no labels.csv."""
    return frozenset(int(i) for i in read_labels(labelled)["id"]) if (labelled / "labels.csv").is_file() else frozenset()


def training_labels(root: Path) -> pd.DataFrame:
    """`labels.csv` of the RSNA films no real-film test reads: not validation, not development, not
    reported at full resolution (`real_hands_labelled` beside `root`)."""
    labels = read_labels(root)
    ids = labels["id"].to_numpy()
    reported = reported_ids(root.parent / "real_hands_labelled")
    return labels[~is_validation_id(ids) & ~is_dev_id(ids) & ~labels["id"].isin(list(reported))]


@dataclass
class RealSet:
    """Film views (N, 100, 100) uint8 with their labels."""

    views: np.ndarray
    ids: np.ndarray
    bone_age_months: np.ndarray
    male: np.ndarray  # float32 1.0 / 0.0

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, keep: np.ndarray) -> RealSet:
        return RealSet(self.views[keep], self.ids[keep], self.bone_age_months[keep], self.male[keep])


def read_labels(root: Path) -> pd.DataFrame:
    """`labels.csv` (`id,boneage,male`) of an RSNA folder, checked."""
    path = root / "labels.csv"
    if not path.is_file():
        raise ManifestError(f"{path} is missing; point to a folder with labels.csv (id,boneage,male) and images/")
    table = pd.read_csv(path)
    missing = {"id", "boneage", "male"} - set(table.columns)
    if missing:
        raise ManifestError(f"{path} lacks the column(s) {', '.join(sorted(missing))}; expected id,boneage,male")
    table["male"] = table["male"].astype(str).str.lower().isin(["true", "1", "m"])
    return table


def load_rsna_100px(root: Path, cache: Path | None = None) -> RealSet:
    """All films of `root` (`labels.csv`, `images/<id>.png`), cached as one `.npz` when `cache` is given."""
    table = read_labels(root)
    if cache is not None and cache.is_file():
        stored = np.load(cache)
        if np.array_equal(stored["ids"], table["id"].to_numpy()):
            return RealSet(stored["views"], stored["ids"], stored["bone_age"], stored["male"])
    views = np.stack([_read_view(root / "images" / f"{i}.png") for i in table["id"]])
    real = RealSet(views, table["id"].to_numpy(), table["boneage"].to_numpy(np.float32), table["male"].to_numpy(np.float32))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, views=real.views, ids=real.ids, bone_age=real.bone_age_months, male=real.male)
    return real


def _read_view(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ManifestError(f"{path} is missing or not an image")
    if image.shape != (100, 100):
        image = cv2.resize(image, (100, 100), interpolation=cv2.INTER_NEAREST_EXACT)
    return image


def split_real(real: RealSet, exclude_ids: Set[int]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, validation); `exclude_ids` (films reported elsewhere) are in neither."""
    excluded = np.isin(real.ids, list(exclude_ids))
    val = is_validation_id(real.ids) & ~excluded
    return ~val & ~excluded, val
