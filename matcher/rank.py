"""Ranking rules: how a disorder (or gene) scores from its gallery cases' similarities to a query.

- `nearest`: GestaltMatcher's rule, the similarity of its single nearest case. It favours
  disorders with many gallery cases: each case is one more chance to be the nearest.
- `density` (the default): a class-balanced kernel density, tau * log(mean over the
  disorder's n cases of exp(similarity / tau)). Near tau -> 0 it is the nearest similarity
  minus tau * log(n), at large tau the mean similarity; the bandwidth tau is
  `DENSITY_BANDWIDTH` times the spread (SD) of this query's similarities to the gallery, so
  it follows the scale of whatever model made the space. Chosen by GestaltMatcher's protocol
  on unseen syndromes (benchmarks/new_syndromes.md).

The evidence of a disorder is always its nearest cases. The matrix functions serve
calibration and evaluation (thousands of queries), `rank_labels` one query's search hits;
both compute the same scores. Similarities are cosine similarities of unit-length
embeddings (inner products), so larger is closer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np


class RankingRule(StrEnum):
    NEAREST = "nearest"
    DENSITY = "density"


DEFAULT_RULE = RankingRule.DENSITY
DENSITY_BANDWIDTH = 0.03  # x the SD of the query's similarities; picked on a cohort not reported


@dataclass(frozen=True)
class LabelIndex:
    """Gallery labels as integer codes: `codes[i]` is the label of gallery case `i`."""

    names: tuple[str, ...]
    codes: np.ndarray

    @classmethod
    def of(cls, labels: Sequence[str]) -> LabelIndex:
        names, codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
        return cls(tuple(str(n) for n in names), codes.astype(np.int64))

    def counts(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(self.names))


def nearest_per_label(similarities: np.ndarray, labels: LabelIndex) -> tuple[np.ndarray, np.ndarray]:
    """Per query and label: the best similarity and the gallery index that gives it.

    `similarities` is (Q, G); returns `best` (Q, L) with -inf where a label has no usable
    case (masked with -inf by the caller) and `nearest` (Q, L) gallery indices (-1 there).
    """
    sims = np.atleast_2d(np.asarray(similarities, dtype=np.float32))
    q, g = sims.shape
    if g != len(labels.codes):
        raise ValueError(f"{g} similarities per query but {len(labels.codes)} gallery labels")
    n_labels = len(labels.names)
    order = np.argsort(labels.codes, kind="stable")
    sorted_codes = labels.codes[order]
    starts = np.searchsorted(sorted_codes, np.arange(n_labels))
    present = np.bincount(labels.codes, minlength=n_labels) > 0
    best = np.full((q, n_labels), -np.inf, np.float32)
    nearest = np.full((q, n_labels), -1, np.int64)
    if g == 0:
        return best, nearest
    by_label = sims[:, order]
    # reduceat needs strictly valid starts; labels with no cases are skipped via `present`
    valid_starts = starts[present]
    maxima = np.maximum.reduceat(by_label, valid_starts, axis=1)
    best[:, present] = maxima
    ends = np.append(valid_starts[1:], g)
    for j, (lo, hi) in enumerate(zip(valid_starts, ends, strict=True)):
        label = int(sorted_codes[lo])
        local = np.argmax(by_label[:, lo:hi], axis=1)
        nearest[:, label] = order[lo + local]
        finite = np.isfinite(maxima[:, j])
        nearest[~finite, label] = -1
    return best, nearest


def _bandwidth(similarities: np.ndarray) -> np.ndarray:
    """tau per query row: `DENSITY_BANDWIDTH` x the SD of its finite similarities (a floor keeps it positive)."""
    finite = np.where(np.isfinite(similarities), similarities, np.nan)
    spread = np.nan_to_num(np.nanstd(finite, axis=1), nan=0.0)
    return np.maximum(DENSITY_BANDWIDTH * spread, 1e-6)


def _log_mean_exp(values: np.ndarray, tau: np.ndarray, count: np.ndarray) -> np.ndarray:
    """tau * log(sum(exp(values / tau)) / count) per row, ignoring -inf entries (cases not usable)."""
    scaled = values / tau[:, None]
    top = np.max(scaled, axis=1)
    safe_top = np.where(np.isfinite(top), top, 0.0)
    total = np.exp(scaled - safe_top[:, None]).sum(axis=1)
    with np.errstate(divide="ignore"):
        return np.where(np.isfinite(top) & (count > 0), tau * (safe_top + np.log(total / np.maximum(count, 1))), -np.inf)


def label_scores(similarities: np.ndarray, labels: LabelIndex, rule: RankingRule = DEFAULT_RULE) -> tuple[np.ndarray, np.ndarray]:
    """Per query and label: the rule's score (-inf where the label has no usable case) and the
    gallery index of the label's nearest case (-1 there). -inf similarities mark
    cases the caller excluded (a query's own patient); they do not count in a label's mean."""
    sims = np.atleast_2d(np.asarray(similarities, dtype=np.float64))
    best, nearest = nearest_per_label(sims.astype(np.float32), labels)
    if rule == RankingRule.NEAREST:
        return best, nearest
    tau = _bandwidth(sims)
    scores = np.full(best.shape, -np.inf)
    for code in range(len(labels.names)):
        members = sims[:, labels.codes == code]
        if members.shape[1]:
            scores[:, code] = _log_mean_exp(members, tau, np.isfinite(members).sum(axis=1))
    return scores.astype(np.float32), nearest


def label_ranks(best: np.ndarray, true_codes: np.ndarray) -> np.ndarray:
    """1-based rank of each query's true label among all labels (ties count against it)."""
    best = np.atleast_2d(best)
    true_scores = best[np.arange(len(true_codes)), true_codes]
    return 1 + (best > true_scores[:, None]).sum(axis=1) + ((best == true_scores[:, None]).sum(axis=1) - 1)


def macro_topk(ranks: np.ndarray, true_codes: np.ndarray, ks: Sequence[int] = (1, 5, 10, 30)) -> dict[int, float]:
    """Top-k accuracy averaged over disorders (each disorder weighs the same), as GestaltMatcher reports."""
    result: dict[int, float] = {}
    classes = np.unique(true_codes)
    for k in ks:
        per_class = [float(np.mean(ranks[true_codes == c] <= k)) for c in classes]
        result[k] = float(np.mean(per_class)) if per_class else float("nan")
    return result


@dataclass
class RankedLabel:
    """One row of a disorder or gene ranking."""

    label: str
    name: str | None
    rank: int
    score: float | None  # the rule's score (nearest: the nearest case's cosine similarity); None: no case within the search depth
    nearest_cases: list[str]  # case ids, nearest first (the API calls them its evidence)
    cases_in_gallery: int
    probability: float | None = None
    interval: tuple[float, float] | None = None
    sources: dict | None = None  # with HPO terms or genes: the combined probability and each source's part (index.evidence)

    def to_json(self) -> dict:
        return {
            **({"sources": self.sources} if self.sources is not None else {}),
            "label": self.label,
            "name": self.name,
            "rank": self.rank,
            "score": None if self.score is None else round(self.score, 4),
            "evidence": self.nearest_cases,
            "cases_in_gallery": self.cases_in_gallery,
            "probability": None if self.probability is None else round(self.probability, 4),
            "interval": None if self.interval is None else [round(self.interval[0], 4), round(self.interval[1], 4)],
        }


def rank_labels(
    hit_labels: Sequence[str | None],
    hit_case_ids: Sequence[str],
    hit_scores: Sequence[float],
    all_labels: dict[str, int],
    names: dict[str, str] | None = None,
    cases_per_label: int = 3,
    rule: RankingRule = DEFAULT_RULE,
) -> list[RankedLabel]:
    """Rank every label in `all_labels` (label -> its cases in the gallery) by `rule`.

    `hit_*` are the searched cases, best first (all of the gallery up to the search depth;
    cases beyond it add nothing measurable to a density). Labels with no hit among them are
    listed after the others with score None.
    """
    nearest: dict[str, list[str]] = {}
    similarities: dict[str, list[float]] = {}
    for label, case_id, s in zip(hit_labels, hit_case_ids, hit_scores, strict=True):
        if label is None or label not in all_labels:
            continue
        similarities.setdefault(label, []).append(float(s))
        if len(nearest.setdefault(label, [])) < cases_per_label:
            nearest[label].append(case_id)
    score = {label: values[0] for label, values in similarities.items()}
    if rule == RankingRule.DENSITY and score:
        tau = _bandwidth(np.asarray([hit_scores], dtype=np.float64))
        for label, values in similarities.items():
            row = np.asarray([values], dtype=np.float64)
            score[label] = float(_log_mean_exp(row, tau, np.asarray([max(all_labels[label], len(values))]))[0])
    seen = sorted(score, key=lambda lab: (-score[lab], lab))
    unseen = sorted(set(all_labels) - set(score))
    names = names or {}
    return [
        RankedLabel(lab, names.get(lab), i + 1, score.get(lab), nearest.get(lab, []), all_labels[lab])
        for i, lab in enumerate(seen + unseen)
    ]
