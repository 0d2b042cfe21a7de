"""What a disorder's probability is read from: its score seen against the query's other disorders.

A ranking rule's score alone does not say whether the top disorder is right: a query close to
two disorders has a high score for both and is right only half the time, and a rare disorder
(few gallery cases) scores lower under the density rule even when it is the answer. The
calibration (`matcher.calibration`) therefore reads four numbers per (query, disorder):

- `score`: the rule's score;
- `gap`: the score minus the best score of any other disorder (positive only for the top one;
  where no other disorder has a score, the other is taken as -1, the lowest cosine similarity);
- `z_in_query`: the score standardised over this query's disorders (0 where only one has a score);
- `log_cases`: the log of the disorder's usable cases in the gallery.

Chosen on the seed-7 cohort (benchmarks/evaluation.md reports seed 8): the AUROC of the top
disorder's probability for right vs wrong answers was 0.877 from the score alone, 0.904 from
these four.
"""

from __future__ import annotations

import numpy as np

FEATURES = ("score", "gap", "z_in_query", "log_cases")
NO_OTHER = -1.0  # the score of "another disorder" when the query has none


def label_features(scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(Q, L, len(FEATURES)) from rule scores (Q, L; -inf or NaN where a disorder has no score) and
    its usable cases (L,) or (Q, L). Entries without a score are NaN."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    finite = np.isfinite(scores)
    values = np.where(finite, scores, -np.inf)
    ordered = np.sort(values, axis=1)
    first = ordered[:, -1]
    second = ordered[:, -2] if scores.shape[1] > 1 else np.full(len(scores), -np.inf)
    is_first = values >= first[:, None]
    other = np.where(is_first, second[:, None], first[:, None])
    other = np.where(np.isfinite(other), other, NO_OTHER)
    with np.errstate(invalid="ignore"):
        masked = np.where(finite, scores, np.nan)
        n = finite.sum(axis=1, keepdims=True)
        mean = np.nansum(masked, axis=1, keepdims=True) / np.maximum(n, 1)
        spread = np.sqrt(np.nansum((masked - mean) ** 2, axis=1, keepdims=True) / np.maximum(n, 1))
        z = np.where(spread > 0, (masked - mean) / np.where(spread > 0, spread, 1.0), 0.0)
    cases = np.broadcast_to(np.asarray(counts, dtype=np.float64), scores.shape)
    columns = [masked, masked - other, z, np.log(np.maximum(cases, 1.0))]
    stacked = np.stack(columns, axis=-1)
    stacked[~finite] = np.nan
    return stacked


def select(features: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """The columns of `label_features` named in `names` (a stored calibration may use fewer)."""
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ValueError(f"unknown calibration features {unknown}; known: {list(FEATURES)}")
    return features[..., [FEATURES.index(n) for n in names]]
