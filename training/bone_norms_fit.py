"""Fitting bone norms (`matcher.bone_norms.BoneNorms`) on unaffected hands.

Per bone and sex, the log proportion (`matcher.bone_profile.log_profile`) is modelled as a smooth
function of age: a cubic B-spline (scikit-learn's `SplineTransformer`) with a ridge penalty for
the mean, and the same for the SD, fitted on the absolute residuals (scaled by sqrt(pi / 2), which
makes their mean an SD for normal residuals). Hands more than 4 SD from the first fit are left out
and the fit repeated, so that a mislabelled point does not widen a norm. Both curves are
tabulated on a 0-20 year grid; each bone's norm covers the ages of the hands that measured it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import SplineTransformer

from matcher.bone_norms import SEXES, BoneNorms, NormsError
from matcher.bone_profile import log_profile, reference_offsets
from matcher.hand_scheme import BONE_NAMES

GRID = np.arange(0.0, 20.0001, 0.25)


@dataclass(frozen=True)
class NormFitConfig:
    knots: int = 4
    ridge: float = 1.0
    min_hands: int = 15  # per bone and sex; fewer and the bone has no norm for that sex
    min_sd: float = 0.01  # log units: a norm never claims more precision than 1% of length
    outlier_sd: float = 4.0


def _smooth(ages: np.ndarray, values: np.ndarray, config: NormFitConfig):
    knots = max(2, min(config.knots, len(np.unique(ages)) // 4))
    model = make_pipeline(SplineTransformer(n_knots=knots, degree=3, extrapolation="constant"), Ridge(alpha=config.ridge))
    return model.fit(ages[:, None], values)


def _fit_one(ages: np.ndarray, values: np.ndarray, config: NormFitConfig) -> tuple[np.ndarray, np.ndarray]:
    keep = np.ones(len(ages), bool)
    for _ in range(2):
        mean = _smooth(ages[keep], values[keep], config)
        spread = np.abs(values - mean.predict(ages[:, None])) * math.sqrt(math.pi / 2)
        sd = _smooth(ages[keep], spread[keep], config)
        sd_at = np.maximum(sd.predict(ages[:, None]), config.min_sd)
        keep = np.abs(values - mean.predict(ages[:, None])) <= config.outlier_sd * sd_at
    return mean.predict(GRID[:, None]), np.maximum(sd.predict(GRID[:, None]), config.min_sd)


def profiles_of(hands: pd.DataFrame, offsets: np.ndarray | None = None) -> np.ndarray:
    """(N, 19) log proportions of a table with one length column per bone (`BONE_NAMES`)."""
    lengths = hands[list(BONE_NAMES)].to_numpy(float)
    return np.stack([log_profile(row, offsets) for row in lengths]) if len(lengths) else np.zeros((0, len(BONE_NAMES)))


def fit_norms(hands: pd.DataFrame, population: str, config: NormFitConfig | None = None) -> BoneNorms:
    """Norms from a table of unaffected hands: `age_years`, `sex` (F/M), `source` and the 19 bone lengths."""
    config = config or NormFitConfig()
    missing = [c for c in ("age_years", "sex", "source", *BONE_NAMES) if c not in hands]
    if missing:
        raise NormsError(f"the hands table lacks {', '.join(missing)}")
    offsets = reference_offsets(profiles_of(hands))
    profiles = profiles_of(hands, offsets)
    ages, sexes = hands["age_years"].to_numpy(float), hands["sex"].to_numpy(str)
    mean = {s: np.full((len(BONE_NAMES), len(GRID)), np.nan) for s in SEXES}
    sd = {s: np.full((len(BONE_NAMES), len(GRID)), np.nan) for s in SEXES}
    age_range = np.full((len(BONE_NAMES), 2), np.nan)
    for b, _ in enumerate(BONE_NAMES):
        measured = np.isfinite(profiles[:, b]) & np.isfinite(ages)
        for sex in SEXES:
            rows = measured & (sexes == sex)
            if rows.sum() >= config.min_hands:
                mean[sex][b], sd[sex][b] = _fit_one(ages[rows], profiles[rows, b], config)
        fitted = all(np.isfinite(mean[s][b]).all() for s in SEXES)
        if fitted:
            age_range[b] = (ages[measured].min(), ages[measured].max())
    if np.isnan(age_range).all():
        raise NormsError(f"no bone was measured on {config.min_hands} or more hands of each sex; give more unaffected hands")
    counts = {str(k): int(v) for k, v in hands["source"].value_counts().items()}
    return BoneNorms(population, GRID.copy(), mean, sd, age_range, offsets, counts)
