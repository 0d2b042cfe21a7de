"""GestaltMatcher's ranking rule: a disorder (or gene) scores the similarity of its single
nearest gallery case, and that case is the evidence.

The functions work on similarity matrices so that evaluation (thousands of queries) and
serving (one query) share one implementation. Similarities are cosine similarities of
unit-length embeddings (inner products), so larger is closer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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
    case (masked with -inf by the caller) and `evidence` (Q, L) gallery indices (-1 there).
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
    evidence = np.full((q, n_labels), -1, np.int64)
    if g == 0:
        return best, evidence
    by_label = sims[:, order]
    # reduceat needs strictly valid starts; labels with no cases are skipped via `present`
    valid_starts = starts[present]
    maxima = np.maximum.reduceat(by_label, valid_starts, axis=1)
    best[:, present] = maxima
    ends = np.append(valid_starts[1:], g)
    for j, (lo, hi) in enumerate(zip(valid_starts, ends, strict=True)):
        label = int(sorted_codes[lo])
        local = np.argmax(by_label[:, lo:hi], axis=1)
        evidence[:, label] = order[lo + local]
        finite = np.isfinite(maxima[:, j])
        evidence[~finite, label] = -1
    return best, evidence


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
