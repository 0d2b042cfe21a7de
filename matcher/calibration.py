"""From a similarity to "how likely is this disorder right": calibrated on the gallery itself.

Leave-one-patient-out over the gallery: each case is a query against every other
patient's cases and every disorder gets its score under the ranking rule (`matcher.rank`). The
query's own disorder gives a positive, every other disorder a negative. A logistic curve
(Platt scaling) maps a disorder's score to the probability that it is the right one; a
bootstrap over queries gives an interval.

"No close match" says that the query's disorder is probably not in the gallery. Leave one
patient out gives both sides: with the query's own disorder removed, the best remaining
score is what an absent disorder looks like; where the own disorder is ranked first, its
score is what a right answer looks like. The threshold is the 95th percentile of the
absent side, lowered where needed so that it stays off for at least 80% of right answers
(a flag that fires on everything tells the geneticist nothing); the two rates are kept.

Quality is reported as a reliability table and the expected calibration error, both from
two-fold cross-fitting by patient (the curve is judged on patients it was not fitted on).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from matcher.errors import Bone2GeneError
from matcher.rank import DEFAULT_RULE, LabelIndex, RankingRule, label_scores

NO_MATCH_QUANTILE = 0.95  # of the absent-disorder scores: the flag fires below it...
NO_MATCH_KEEP_OFF = 0.80  # ...unless that would flag more than 20% of right answers
BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass
class Calibration:
    coef: float
    intercept: float
    bootstrap: list[tuple[float, float]]
    no_match_threshold: float
    reliability: list[dict]
    expected_calibration_error: float
    queries: int
    disorders: int
    label_counts: dict[str, int]
    rule: str = RankingRule.NEAREST.value  # the scores it maps (stored calibrations from before rules existed: nearest)
    no_match_fires_when_absent: float | None = None  # leave-one-patient-out share of absent-disorder queries flagged
    no_match_off_when_right: float | None = None  # ... and of right top-1 answers not flagged

    def probability(self, score: float) -> tuple[float, float, float]:
        """P(correct) at this score and its 90% bootstrap interval."""
        p = _sigmoid(self.coef * score + self.intercept)
        draws = [_sigmoid(a * score + b) for a, b in self.bootstrap] or [p]
        return float(p), float(np.percentile(draws, 5)), float(np.percentile(draws, 95))

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Calibration:
        data = dict(data)
        data["bootstrap"] = [tuple(x) for x in data["bootstrap"]]
        return cls(**data)

    def stale(self, label_counts: dict[str, int], rule: RankingRule = DEFAULT_RULE) -> bool:
        """Recompute for another ranking rule, or when the gallery grew or shrank by >10%, a disorder
        appeared or vanished, or one changed by >20%."""
        old, new = self.label_counts, label_counts
        if self.rule != rule or self.no_match_fires_when_absent is None or set(old) != set(new):
            return True
        total_old, total_new = sum(old.values()), sum(new.values())
        if abs(total_new - total_old) > 0.1 * max(1, total_old):
            return True
        return any(abs(new[k] - old[k]) > max(1, 0.2 * old[k]) for k in old)


class CalibrationError(Bone2GeneError, ValueError):
    """Too little data to calibrate; the message says how much is needed."""


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def lopo_scores(
    embeddings: np.ndarray, labels: list[str], patients: list[str], queries: np.ndarray, rule: RankingRule = DEFAULT_RULE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each query row: per-disorder scores under `rule` (other patients only) and its own code.

    Returns (best (Q, L), own_codes (Q,), usable (Q,) bool: its own disorder has another patient).
    """
    index = LabelIndex.of(labels)
    patients_arr = np.asarray(patients)
    sims = embeddings[queries] @ embeddings.T
    sims[patients_arr[queries][:, None] == patients_arr[None, :]] = -np.inf
    best, _ = label_scores(sims, index, rule)
    own = index.codes[queries]
    usable = np.isfinite(best[np.arange(len(queries)), own])
    return best, own, usable


def _pairs(best: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened (score, is_correct, query index) over finite disorder scores."""
    q, n_labels = best.shape
    correct = np.zeros_like(best, dtype=bool)
    correct[np.arange(q), own] = True
    finite = np.isfinite(best)
    query_of = np.repeat(np.arange(q), n_labels).reshape(q, n_labels)
    return best[finite], correct[finite], query_of[finite]


def _fit(scores: np.ndarray, correct: np.ndarray) -> tuple[float, float]:
    model = LogisticRegression(C=100.0).fit(scores[:, None], correct.astype(int))
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def fit_calibration(
    embeddings: np.ndarray,
    labels: list[str],
    patients: list[str],
    seed: int = 0,
    max_queries: int = 3000,
    bootstraps: int = 50,
    rule: RankingRule = DEFAULT_RULE,
) -> Calibration:
    """Calibrate on a gallery's diagnosed cases (embeddings unit length)."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    counts = {str(k): int(v) for k, v in zip(*np.unique(np.asarray(labels, dtype=str), return_counts=True), strict=True)}
    if len(counts) < 2:
        raise CalibrationError("calibration needs diagnosed cases of at least two disorders")
    rng = np.random.default_rng(seed)
    queries = np.arange(len(labels))
    if len(queries) > max_queries:
        queries = np.sort(rng.choice(queries, max_queries, replace=False))
    best, own, usable = lopo_scores(embeddings, labels, patients, queries, rule)
    best, own, queries = best[usable], own[usable], queries[usable]
    if len(queries) < 10:
        raise CalibrationError(f"only {len(queries)} cases have another patient with the same disorder; calibration needs at least 10")
    scores, correct, query_of = _pairs(best, own)
    coef, intercept = _fit(scores, correct)
    boot = []
    for _ in range(bootstraps):
        chosen = rng.choice(len(queries), len(queries), replace=True)
        weight = np.bincount(chosen, minlength=len(queries))[query_of]
        keep = weight > 0
        reps = np.repeat(np.arange(len(scores))[keep], weight[keep])
        if correct[reps].all() or not correct[reps].any():
            continue
        boot.append(_fit(scores[reps], correct[reps]))
    threshold, fires, stays_off = _no_match_threshold(best, own)
    reliability, ece = _cross_fitted_reliability(best, own, np.asarray(patients)[queries], rng)
    return Calibration(
        coef, intercept, boot, threshold, reliability, ece, len(queries), len(counts), counts, RankingRule(rule).value, fires, stays_off
    )


def _no_match_threshold(best: np.ndarray, own: np.ndarray) -> tuple[float, float, float]:
    """(threshold, share of absent-disorder queries below it, share of right answers at or above it)."""
    rows = np.arange(len(own))
    unrelated = best.copy()
    unrelated[rows, own] = -np.inf
    absent = unrelated.max(axis=1)  # the best score left when the query's disorder is not in the gallery
    absent = absent[np.isfinite(absent)]
    right = best[rows, own][best.argmax(axis=1) == own]  # the top score where it is the right disorder
    threshold = float(np.quantile(absent, NO_MATCH_QUANTILE))
    if right.size:
        threshold = min(threshold, float(np.quantile(right, 1 - NO_MATCH_KEEP_OFF, method="lower")))
    fires = float(np.mean(absent < threshold)) if absent.size else float("nan")
    stays_off = float(np.mean(right >= threshold)) if right.size else float("nan")
    return threshold, fires, stays_off


def _cross_fitted_reliability(
    best: np.ndarray, own: np.ndarray, patients: np.ndarray, rng: np.random.Generator
) -> tuple[list[dict], float]:
    unique = np.unique(patients)
    fold_of = dict(zip(unique, rng.integers(0, 2, len(unique)), strict=True))
    folds = np.array([fold_of[p] for p in patients])
    predicted, observed = [], []
    for fold in (0, 1):
        train, test = folds != fold, folds == fold
        if not train.any() or not test.any():
            continue
        s_train, c_train, _ = _pairs(best[train], own[train])
        if c_train.all() or not c_train.any():
            continue
        coef, intercept = _fit(s_train, c_train)
        s_test, c_test, _ = _pairs(best[test], own[test])
        predicted.append(1 / (1 + np.exp(-(coef * s_test + intercept))))
        observed.append(c_test)
    if not predicted:
        return [], float("nan")
    bins, ece = reliability_bins(np.concatenate(predicted), np.concatenate(observed))
    rows = [{"bin": b, "pairs": n, "mean_predicted": round(mp, 4), "observed": round(ob, 4)} for b, n, mp, ob in bins]
    return rows, ece


def reliability_bins(predicted: np.ndarray, observed: np.ndarray) -> tuple[list[tuple[str, int, float, float]], float]:
    """Per probability bin (`BINS`): (label, count, mean predicted, share observed), and the expected calibration error."""
    p, o = np.asarray(predicted, float), np.asarray(observed, float)
    rows, ece = [], 0.0
    for lo, hi in zip(BINS[:-1], BINS[1:], strict=True):
        inside = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        if inside.any():
            rows.append((f"{lo:.1f}-{hi:.1f}", int(inside.sum()), float(p[inside].mean()), float(o[inside].mean())))
            ece += inside.mean() * abs(p[inside].mean() - o[inside].mean())
    return rows, float(ece)
