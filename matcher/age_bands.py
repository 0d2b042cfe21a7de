"""The age bands every count and figure is broken down by: a gallery's cases, an evaluation's
top-k, a reader's bone-age errors. One table, so that the figures line up across reports.

Bands are [low, high) in months; the last one is open.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AgeBand:
    low: float  # months, inclusive
    high: float  # months, exclusive
    name: str


AGE_BANDS = (
    AgeBand(0, 36, "under 3 y"),
    AgeBand(36, 96, "3-8 y"),
    AgeBand(96, 156, "8-13 y"),
    AgeBand(156, float("inf"), "over 13 y"),
)


def age_band(age_months: float) -> str:
    """The name of the band `age_months` falls in."""
    return next(band.name for band in AGE_BANDS if band.low <= age_months < band.high)


def in_band(ages_months: np.ndarray, band: AgeBand) -> np.ndarray:
    ages = np.asarray(ages_months, float)
    return (ages >= band.low) & (ages < band.high)
