"""Cohort statistics on the clinical feature space, after GestaltMatcher's cohort analyses.

- `tightness`: is a cohort more similar within itself than random gallery subsets of the
  same size? (permutation test; the p-value and the percentile of the observed value in
  the random distribution)
- `compare`: two cohorts' distance distributions, and a classifier two-sample test in
  the spirit of PhenoScore: cross-validated AUC of a logistic regression telling A from B
  (folds keep patients together), with a permutation p-value.
- `disorder_distances`: mean cosine distance between every pair of disorders (for a
  clustered heatmap).
- `neighbour_purity`: per disorder, the share of each case's k nearest cases (other
  patients only) that have the same disorder.

Embeddings are unit vectors; distance = 1 - cosine similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold


def mean_pairwise_distance(vectors: np.ndarray) -> float:
    n = len(vectors)
    if n < 2:
        raise ValueError("a cohort needs at least two cases")
    sims = vectors @ vectors.T
    return float(1.0 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))


@dataclass
class Tightness:
    cohort_size: int
    observed: float  # mean pairwise cosine distance within the cohort
    random_mean: float
    random_sd: float
    percentile: float  # share of random subsets at least as tight, in percent
    p_value: float
    permutations: int


def tightness(cohort: np.ndarray, gallery: np.ndarray, permutations: int = 1000, seed: int = 0) -> Tightness:
    """Permutation test: random subsets of `gallery` of the cohort's size."""
    rng = np.random.default_rng(seed)
    observed = mean_pairwise_distance(cohort)
    size = len(cohort)
    if size > len(gallery):
        raise ValueError("the cohort is larger than the gallery it is compared with")
    random = np.array([mean_pairwise_distance(gallery[rng.choice(len(gallery), size, replace=False)]) for _ in range(permutations)])
    at_least_as_tight = int(np.sum(random <= observed))
    return Tightness(
        size,
        observed,
        float(random.mean()),
        float(random.std()),
        100.0 * at_least_as_tight / permutations,
        (1 + at_least_as_tight) / (1 + permutations),
        permutations,
    )


@dataclass
class Comparison:
    size_a: int
    size_b: int
    within_a: float
    within_b: float
    between: float
    auc: float
    auc_p_value: float
    permutations: int
    folds: int
    distances_within_a: np.ndarray
    distances_within_b: np.ndarray
    distances_between: np.ndarray


def _upper(sims: np.ndarray) -> np.ndarray:
    return 1.0 - sims[np.triu_indices(len(sims), k=1)]


def cross_validated_auc(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> float:
    """How well a logistic model tells labels `y` apart from `x`, scored out of fold (folds never split a group)."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = np.zeros(len(y))
    for train, test in splitter.split(x, y, groups):
        model = LogisticRegression(C=1.0, max_iter=1000).fit(x[train], y[train])
        scores[test] = model.decision_function(x[test])
    return float(roc_auc_score(y, scores))


def compare(
    a: np.ndarray, b: np.ndarray, patients_a: list[str], patients_b: list[str], permutations: int = 200, seed: int = 0
) -> Comparison:
    """Are cohorts A and B separable in the feature space?"""
    if len(a) < 4 or len(b) < 4:
        raise ValueError("each cohort needs at least 4 cases for a cross-validated comparison")
    x = np.vstack([a, b])
    y = np.r_[np.zeros(len(a), int), np.ones(len(b), int)]
    groups = np.array([f"a:{p}" for p in patients_a] + [f"b:{p}" for p in patients_b])
    folds = int(min(5, len(set(patients_a)), len(set(patients_b))))
    if folds < 2:
        raise ValueError("each cohort needs cases from at least two patients")
    auc = cross_validated_auc(x, y, groups, folds, seed)
    rng = np.random.default_rng(seed)
    null = []
    for i in range(permutations):
        # permute labels between whole patients so that the null keeps the patient structure
        patients = np.unique(groups)
        flipped = dict(zip(patients, rng.permutation([p.startswith("b:") for p in patients]), strict=True))
        y_perm = np.array([int(flipped[g]) for g in groups])
        if y_perm.min() == y_perm.max():
            continue
        null.append(cross_validated_auc(x, y_perm, groups, folds, seed + 1 + i))
    null_arr = np.array(null)
    p_value = (1 + int(np.sum(null_arr >= auc))) / (1 + len(null_arr))
    within_a, within_b, between = _upper(a @ a.T), _upper(b @ b.T), (1.0 - a @ b.T).ravel()
    return Comparison(
        len(a),
        len(b),
        float(within_a.mean()),
        float(within_b.mean()),
        float(between.mean()),
        auc,
        p_value,
        len(null_arr),
        folds,
        within_a,
        within_b,
        between,
    )


def disorder_distances(vectors: np.ndarray, labels: list[str]) -> tuple[list[str], np.ndarray]:
    """Mean cosine distance between the cases of every pair of disorders (diagonal: within)."""
    names = sorted(set(labels))
    labels_arr = np.asarray(labels)
    groups = [vectors[labels_arr == name] for name in names]
    matrix = np.zeros((len(names), len(names)))
    for i, gi in enumerate(groups):
        for j, gj in enumerate(groups):
            matrix[i, j] = float(1.0 - (gi @ gj.T).mean())
    return names, matrix


def neighbour_purity(vectors: np.ndarray, labels: list[str], patients: list[str], k: int = 5) -> dict[str, float]:
    """Per disorder: mean share of each case's k nearest other-patient cases with the same disorder."""
    labels_arr, patients_arr = np.asarray(labels), np.asarray(patients)
    sims = vectors @ vectors.T
    sims[patients_arr[:, None] == patients_arr[None, :]] = -np.inf
    k = min(k, len(vectors) - 1)
    nearest = np.argpartition(-sims, k, axis=1)[:, :k]
    same = labels_arr[nearest] == labels_arr[:, None]
    valid = np.isfinite(np.take_along_axis(sims, nearest, axis=1))
    purity = np.where(valid.sum(1) > 0, (same & valid).sum(1) / np.maximum(valid.sum(1), 1), np.nan)
    return {name: float(np.nanmean(purity[labels_arr == name])) for name in sorted(set(labels))}
