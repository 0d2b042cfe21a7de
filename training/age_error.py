"""How bone-age errors spread, beyond one mean: by bone age, and from one small sample to the next.

Two questions a reader of `benchmarks/real.md` asks of a bone-age MAD:
- where the errors sit: a regressor pulls the ends of the age range toward the middle, so
  infants read older and adolescents younger; a band table shows it (bias = read minus truth);
- how far a MAD on a handful of films (the 14 labelled full-resolution films) can fall from the
  MAD on hundreds: drawing as many validation films at random, many times, gives the spread a
  reader with the validation errors would show on such a handful, and how often it would do as
  badly as on the handful measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from matcher.age_bands import AGE_BANDS

AGE_BAND_EDGES_MONTHS = (*(band.low for band in AGE_BANDS), AGE_BANDS[-1].high)  # the one table (matcher.age_bands)


@dataclass(frozen=True)
class AgeBandError:
    """Error of the films whose true bone age lies in [low, high) months."""

    low: float
    high: float | None  # None: the open last band
    films: int
    mad: float
    bias: float


def errors_by_age_band(
    predicted_months: np.ndarray, true_months: np.ndarray, edges: tuple[int, ...] = AGE_BAND_EDGES_MONTHS
) -> list[AgeBandError]:
    """One row per band of true bone age that holds films (empty bands are left out)."""
    true_months = np.asarray(true_months, float)
    error = np.asarray(predicted_months, float) - true_months
    rows = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (true_months >= low) & (true_months < high)
        if inside.any():
            band = error[inside]
            bound = None if np.isinf(high) else high
            rows.append(AgeBandError(low, bound, len(band), round(float(np.abs(band).mean()), 2), round(float(band.mean()), 2)))
    return rows


@dataclass(frozen=True)
class SmallSampleSpread:
    """MADs of `draws` random samples of `films` films each (without replacement) from a larger set,
    against a MAD `observed` on another sample of that size."""

    films: int
    draws: int
    median_mad: float
    p95_mad: float
    observed: float
    share_at_or_above_observed: float


def small_sample_spread(absolute_errors: np.ndarray, films: int, observed: float, draws: int = 10_000, seed: int = 0) -> SmallSampleSpread:
    """How the MAD of `films` films drawn from `absolute_errors` spreads, and how often it reaches `observed`."""
    errors = np.asarray(absolute_errors, float)
    if films < 1 or films > len(errors):
        raise ValueError(f"cannot draw {films} films from {len(errors)} errors; draw between 1 and {len(errors)}")
    rng = np.random.default_rng(seed)
    # one permutation per draw, its first `films` entries: a sample without replacement
    picks = np.argsort(rng.random((draws, len(errors))), axis=1)[:, :films]
    mads = errors[picks].mean(axis=1)
    return SmallSampleSpread(
        films=films,
        draws=draws,
        median_mad=round(float(np.median(mads)), 2),
        p95_mad=round(float(np.percentile(mads, 95)), 2),
        observed=observed,
        share_at_or_above_observed=round(float((mads >= observed).mean()), 4),
    )
