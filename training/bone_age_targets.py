"""Bone-age targets for training, including cases that have no bone-age reading.

A hospital's disorder cohort rarely has a radiologist's bone age for every film. Such a film
still trains the disorder space, but what should the bone-age head learn from it?
- Without distillation it adds no bone-age loss (its target is masked out).
- With `distil_bone_age` the starting model's own prediction on the un-augmented film is the
  target, so fine-tuning for disorders keeps the bone age the starting model (Deeplasia) gave,
  instead of drifting where no label holds it. A randomly initialised model has nothing to
  distil and is refused.
Chronological age is never a stand-in: in a skeletal dysplasia the two differ by design.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from matcher.model import Bone2GeneModel
from training.evaluate import embed_crops


@dataclass
class AgeTargets:
    z: np.ndarray  # z-scored bone-age target per row (0 where there is none)
    known: np.ndarray  # bool: the row has a target (a label, or a distilled prediction)
    distilled: int  # rows whose target is the starting model's prediction


def bone_age_targets(table: pd.DataFrame, crops: np.ndarray, model: Bone2GeneModel, device: torch.device, distil: bool) -> AgeTargets:
    """Targets on the model's z-scale; `model` is the starting model (before any training step)."""
    calibration = model.config.calibration
    months = (
        pd.to_numeric(table["bone_age_months"], errors="coerce").to_numpy(np.float64, copy=True)
        if "bone_age_months" in table
        else np.full(len(table), np.nan)
    )
    missing = np.isnan(months)
    distilled = 0
    if distil and missing.any():
        male = (table["sex"] == "M").to_numpy(np.float32)
        rows = np.flatnonzero(missing)
        months[rows] = embed_crops(model, crops[rows], male[rows], device).bone_age_months
        distilled = len(rows)
    known = ~np.isnan(months)
    z = np.where(known, (months - calibration.age_mean) / calibration.age_sd, 0.0).astype(np.float32)
    return AgeTargets(z, known, distilled)
