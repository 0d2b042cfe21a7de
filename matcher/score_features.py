"""What a disorder's probability is read from: its score seen against the query's other disorders.

A ranking rule's score alone does not say whether the top disorder is right: a query close to
two disorders has a high score for both and is right only half the time, and a rare disorder
(few gallery cases) scores lower under the density rule even when it is the answer. The
calibration (`matcher.calibration`) therefore reads six numbers per (query, disorder), all
from the query's similarities to the gallery's diagnosed cases (`Neighbourhood`):

- `score`: the rule's score;
- `gap`: the score minus the best score of any other disorder (positive only for the top one;
  where no other disorder has a score, the other is taken as -1, the lowest cosine similarity);
- `z_in_query`: the score standardised over this query's disorders (0 where only one has a score);
- `log_cases`: the log of the disorder's usable cases in the gallery;
- `neighbour_share`: the share of the query's `NEIGHBOURS` nearest diagnosed cases that have
  this disorder (a vote of the neighbourhood: a disorder that owns it is rarely wrong);
- `nearest_gap`: how much nearer the disorder's nearest case is than any other disorder's, in
  log(1 - similarity) (positive only for the disorder of the nearest case; in a crowded space the
  similarities differ in the fourth decimal, their logarithmic distances do not).

Why these six, and the neighbourhood's size: docs/decisions/calibration.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from matcher.rank import LabelIndex, RankingRule, label_scores

FEATURES = ("score", "gap", "z_in_query", "log_cases", "neighbour_share", "nearest_gap")
NO_OTHER = -1.0  # the score of "another disorder" when the query has none
NEIGHBOURS = 5  # the neighbourhood `neighbour_share` votes over


@dataclass(frozen=True)
class Neighbourhood:
    """Per query and disorder (Q, L): what its probability is read from. Entries of a disorder
    without a usable case: -inf in `scores` and `nearest`, 0 in `share`."""

    scores: np.ndarray  # the ranking rule's score
    nearest: np.ndarray  # the similarity of the disorder's nearest case
    share: np.ndarray  # of the query's NEIGHBOURS nearest diagnosed cases, the share that are the disorder's
    counts: np.ndarray  # the disorder's usable cases, (L,) or (Q, L)
    names: tuple[str, ...] = ()  # the disorders, in column order

    @classmethod
    def from_similarities(cls, similarities: np.ndarray, labels: LabelIndex, rule: RankingRule) -> Neighbourhood:
        """From (Q, G) similarities to the gallery's diagnosed cases (-inf: a case the query may not use,
        such as its own patient's)."""
        sims = np.atleast_2d(np.asarray(similarities, dtype=np.float64))
        scores, _ = label_scores(sims, labels, rule)
        nearest = scores if rule == RankingRule.NEAREST else label_scores(sims, labels, RankingRule.NEAREST)[0]
        usable = np.isfinite(sims)
        n_labels = len(labels.names)
        counts = np.stack([usable[:, labels.codes == code].sum(axis=1) for code in range(n_labels)], axis=1)
        k = min(NEIGHBOURS, sims.shape[1])
        share = np.zeros((len(sims), n_labels))
        if k:
            order = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            close_codes = labels.codes[order]
            close_usable = np.take_along_axis(usable, order, axis=1)
            voters = np.maximum(close_usable.sum(axis=1), 1)
            share = np.stack([((close_codes == c) & close_usable).sum(axis=1) / voters for c in range(n_labels)], axis=1)
        return cls(np.asarray(scores, np.float64), np.asarray(nearest, np.float64), share, counts, tuple(labels.names))

    @classmethod
    def of_ranking(
        cls, similarities: Sequence[float], labels: Sequence[str | None], names: Sequence[str], scores: np.ndarray, counts: np.ndarray
    ) -> Neighbourhood:
        """One query from its searched cases (nearest first; label None: undiagnosed) and the ranked
        disorders `names` with their rule scores (-inf: none) and gallery cases: a (1, L) neighbourhood."""
        column = {name: j for j, name in enumerate(names)}
        nearest = np.full(len(names), -np.inf)
        share = np.zeros(len(names))
        voters = 0
        for similarity, label in zip(similarities, labels, strict=True):
            if label is None or label not in column:
                continue
            j = column[label]
            nearest[j] = max(nearest[j], float(similarity))
            if voters < NEIGHBOURS:
                share[j] += 1
                voters += 1
        share /= max(voters, 1)
        return cls(np.asarray(scores, np.float64)[None, :], nearest[None, :], share[None, :], np.asarray(counts, np.float64), tuple(names))

    @property
    def nearest_diagnosed(self) -> np.ndarray:
        """(Q,) the similarity of each query's nearest diagnosed case (what "no close match" reads)."""
        return self.nearest.max(axis=1) if self.nearest.shape[1] else np.full(len(self.nearest), -np.inf)

    def top(self) -> np.ndarray:
        """(Q,) the code of each query's first-ranked disorder."""
        return np.asarray(self.scores).argmax(axis=1)

    def top_names(self) -> list[str]:
        """(Q,) each query's first-ranked disorder."""
        if len(self.names) != self.scores.shape[1]:
            raise ValueError(f"this neighbourhood names {len(self.names)} disorders for {self.scores.shape[1]} columns")
        return [self.names[code] for code in self.top()]

    def subset(self, rows: np.ndarray) -> Neighbourhood:
        counts = self.counts[rows] if np.ndim(self.counts) == 2 else self.counts
        return Neighbourhood(self.scores[rows], self.nearest[rows], self.share[rows], counts, self.names)


def log_distance(similarity: np.ndarray) -> np.ndarray:
    """log(1 - similarity): near 1 the similarities of a crowded space differ in the fourth decimal."""
    return np.log1p(-np.clip(similarity, -1.0, 1.0 - 1e-6))


def _gap_to_best_other(values: np.ndarray, finite: np.ndarray, missing_other: float) -> np.ndarray:
    """Each entry minus the best (largest) finite other entry of its row."""
    values = np.where(finite, values, -np.inf)
    ordered = np.sort(values, axis=1)
    first = ordered[:, -1]
    second = ordered[:, -2] if values.shape[1] > 1 else np.full(len(values), -np.inf)
    other = np.where(values >= first[:, None], second[:, None], first[:, None])
    return values - np.where(np.isfinite(other), other, missing_other)


def label_features(neighbourhood: Neighbourhood) -> np.ndarray:
    """(Q, L, len(FEATURES)); entries of a disorder without a score are NaN."""
    scores = np.atleast_2d(np.asarray(neighbourhood.scores, dtype=np.float64))
    finite = np.isfinite(scores)
    with np.errstate(invalid="ignore"):
        masked = np.where(finite, scores, np.nan)
        n = finite.sum(axis=1, keepdims=True)
        mean = np.nansum(masked, axis=1, keepdims=True) / np.maximum(n, 1)
        spread = np.sqrt(np.nansum((masked - mean) ** 2, axis=1, keepdims=True) / np.maximum(n, 1))
        z = np.where(spread > 0, (masked - mean) / np.where(spread > 0, spread, 1.0), 0.0)
        # nearer = larger -log(1 - similarity); with no other disorder, the other is at similarity -1
        closeness = -log_distance(np.where(np.isfinite(neighbourhood.nearest), neighbourhood.nearest, -1.0))
        nearest_gap = _gap_to_best_other(closeness, np.isfinite(neighbourhood.nearest), -log_distance(np.array(NO_OTHER)))
    cases = np.broadcast_to(np.asarray(neighbourhood.counts, dtype=np.float64), scores.shape)
    columns = [
        masked,
        _gap_to_best_other(scores, finite, NO_OTHER),
        z,
        np.log(np.maximum(cases, 1.0)),
        np.asarray(neighbourhood.share, dtype=np.float64),
        nearest_gap,
    ]
    stacked = np.stack(columns, axis=-1)
    stacked[~finite] = np.nan
    return stacked


def select(features: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """The columns of `label_features` named in `names` (a stored calibration may use fewer)."""
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ValueError(f"unknown calibration features {unknown}; known: {list(FEATURES)}")
    return features[..., [FEATURES.index(n) for n in names]]
