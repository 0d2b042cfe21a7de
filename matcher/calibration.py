"""From a similarity to "how likely is this disorder right": calibrated on the gallery itself.

Leave-one-patient-out over the gallery: each case is a query against every other
patient's cases and every disorder gets its score under the ranking rule (`matcher.rank`). The
query's own disorder gives a positive, every other disorder a negative. A logistic model maps
a disorder's neighbourhood seen against the query's other disorders (`matcher.score_features`: the
score, its gap to the best other disorder, its z-score within the query, the disorder's cases,
its share of the query's nearest cases, how much nearer its nearest case is) to the probability
that it is the right one; a bootstrap over queries gives an interval.
A stored calibration carries its format (`CALIBRATION_FORMAT`); older ones are migrated on
reading, still answer queries as they did, and count as stale so that the gallery refits them.

"No close match" says that the query's disorder is probably not in the gallery. It fires when
the query's nearest diagnosed case is less similar than the `NO_MATCH_QUANTILE` of queries whose
disorder was left out of the gallery (leave one patient out gives both sides: with the query's
own disorder removed, the nearest remaining case is what an absent disorder looks like; with
it, what a present one looks like), the threshold lowered where needed so that it stays off for
`NO_MATCH_KEEP_OFF` of queries whose disorder is present. It also fires for a query much farther
from its first-ranked disorder's cases than those cases lie from each other (the presence feature
below, beyond the quantile that leaves `NO_MATCH_FAR_SHARE` of present queries flagged, out of the
same budget): a film of another kind than the gallery's can sit nearer a tight disorder than
unrelated cases sit to each other, yet far beyond that disorder's own spread.

The probability of a disorder is read in two factors: that the query's disorder is among the
gallery's at all, and which one it is if so. The first is a logistic model of the nearest
diagnosed case's distance (log(1 - similarity)) minus the typical distance between cases of the
first-ranked disorder, fitted on the same two leave-one-patient-out sides at even prior odds;
the second is the feature model above, fitted on queries whose disorder is present. Their
product is what the ranking reports. Why each part is as it is, with the measurements:
docs/decisions/calibration.md.

Quality is reported as a reliability table and the expected calibration error, both from
two-fold cross-fitting by patient (the curve is judged on patients it was not fitted on).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
from sklearn.linear_model import LogisticRegression

from matcher.errors import Bone2GeneError
from matcher.rank import DEFAULT_RULE, LabelIndex, RankingRule
from matcher.score_features import FEATURES, Neighbourhood, label_features, log_distance, select

NO_MATCH_QUANTILE = 0.95  # of the absent-disorder nearest similarities: the flag fires below it...
NO_MATCH_KEEP_OFF = 0.80  # ...unless that would flag more than 20% of queries whose disorder is present
NO_MATCH_FAR_SHARE = 0.02  # of those 20%: queries far beyond their first-ranked disorder's own spread
REGULARISATION = 1.0  # inverse L2 strength on standardised features (docs/decisions/calibration.md)
BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass
class Calibration:
    coef: list[float]  # one per feature in `features`
    intercept: float
    bootstrap: list[tuple[list[float], float]]
    no_match_threshold: float  # on the nearest diagnosed case's cosine similarity
    reliability: list[dict]
    expected_calibration_error: float
    queries: int
    disorders: int
    label_counts: dict[str, int]
    rule: str = RankingRule.NEAREST.value  # the scores it maps (stored calibrations from before rules existed: nearest)
    no_match_fires_when_absent: float | None = None  # leave-one-patient-out share of absent-disorder queries flagged
    no_match_off_when_right: float | None = None  # ... and of right top-1 answers not flagged
    features: tuple[str, ...] = FEATURES  # what `coef` weighs (`matcher.score_features`)
    no_match_off_when_present: float | None = None  # ... and of queries whose disorder is present
    presence: tuple[float, float] | None = None  # (coef, intercept) on the relative nearest distance: P(disorder in gallery)
    # per disorder: the median log(1 - similarity) from one of its cases to its nearest case of another patient
    typical_log_distance: dict[str, float] | None = None
    # "no close match" also fires above this log(1 - nearest similarity) minus the first-ranked disorder's typical one
    no_match_relative_threshold: float | None = None
    migrated_from: int | None = None  # the older format it was stored in (`CALIBRATION_FORMAT`); such a one is refitted

    def no_close_match(self, nearest: np.ndarray | float, top_disorder: str | list[str]) -> np.ndarray:
        """Whether "no close match" fires, per query: its nearest diagnosed case's similarity below
        `no_match_threshold`, or its distance relative to the first-ranked disorder's typical one
        above `no_match_relative_threshold` (a calibration stored without it reads the similarity alone)."""
        nearest = np.asarray(nearest, dtype=np.float64)
        flagged = nearest < self.no_match_threshold
        if self.no_match_relative_threshold is None or self.typical_log_distance is None:
            return flagged
        relative = log_distance(nearest) - self.typical_distance_of(top_disorder).reshape(nearest.shape)
        return flagged | (relative > self.no_match_relative_threshold)

    def flags(self, neighbourhood: Neighbourhood) -> np.ndarray:
        """`no_close_match` for every query of `neighbourhood` (Q,)."""
        return self.no_close_match(neighbourhood.nearest_diagnosed, neighbourhood.top_names())

    def in_gallery_probability(self, nearest: np.ndarray | float, top_disorder: str | list[str] | None = None) -> np.ndarray:
        """P(the query's disorder is one of the gallery's), at even prior odds, from the distance of
        its nearest diagnosed case (log(1 - similarity)) relative to how close the first-ranked
        disorder's own cases lie to each other (`typical_log_distance`; a calibration stored
        without that reads the distance alone, one stored without `presence` gives 1)."""
        nearest = np.asarray(nearest, dtype=np.float64)
        if self.presence is None:
            return np.ones_like(nearest)
        x = log_distance(nearest)
        if self.typical_log_distance is not None:
            if top_disorder is None:
                raise ValueError("this calibration reads P(in gallery) relative to the first-ranked disorder: pass top_disorder")
            x = x - self.typical_distance_of(top_disorder).reshape(x.shape)
        coef, intercept = self.presence
        return _logistic(x[..., None], np.array([coef]), intercept)

    def typical_distance_of(self, disorders: str | list[str]) -> np.ndarray:
        """`typical_log_distance` of each disorder; one the calibration has not seen gets the median of all."""
        table = self.typical_log_distance or {}
        fallback = float(np.median(list(table.values()))) if table else 0.0
        return np.array([table.get(str(d), fallback) for d in np.atleast_1d(np.asarray(disorders, dtype=object))], dtype=np.float64)

    def probability_matrix(self, neighbourhood: Neighbourhood) -> np.ndarray:
        """P(correct | the query's disorder is in the gallery) per query and disorder (Q, L); NaN
        where a disorder has no score."""
        x = select(label_features(neighbourhood), self.features)
        return _logistic(x, np.asarray(self.coef), self.intercept)

    def reported_matrix(self, neighbourhood: Neighbourhood) -> np.ndarray:
        """What the ranking reports per query and disorder (Q, L): `probability_matrix` times each
        query's in-gallery probability (its nearest diagnosed distance against its first-ranked
        disorder's typical one)."""
        top = neighbourhood.top_names() if self.typical_log_distance is not None else None
        return self.probability_matrix(neighbourhood) * self.in_gallery_probability(neighbourhood.nearest_diagnosed, top)[:, None]

    def probabilities(self, neighbourhood: Neighbourhood) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One query's disorders (a (1, L) neighbourhood): P(correct | its disorder is in the gallery) and
        its 90% bootstrap interval, each (L,)."""
        x = select(label_features(neighbourhood), self.features)[0]
        p = _logistic(x, np.asarray(self.coef), self.intercept)
        draws = np.stack([_logistic(x, np.asarray(a), b) for a, b in self.bootstrap]) if self.bootstrap else p[None, :]
        return p, np.percentile(draws, 5, axis=0), np.percentile(draws, 95, axis=0)

    def to_json(self) -> dict:
        data = asdict(self)
        data["features"] = list(self.features)
        data["presence"] = None if self.presence is None else list(self.presence)
        return {"format_version": CALIBRATION_FORMAT, **data}

    @classmethod
    def from_json(cls, data: dict) -> Calibration:
        """A stored calibration, brought to this format by `_MIGRATIONS` one version at a time; one
        migrated keeps its old fields empty (it still answers queries as it did) and is stale."""
        version = stored_format(data)
        if version > CALIBRATION_FORMAT:
            raise CalibrationFormatError(
                f"this calibration was stored in format {version} by a newer Bone2Gene (this one reads up to {CALIBRATION_FORMAT}); "
                "upgrade bone2gene, or delete the stored calibration so that the gallery refits it"
            )
        data = {k: v for k, v in data.items() if k != "format_version"}
        for step in range(version, CALIBRATION_FORMAT):
            data = _MIGRATIONS[step](data)
        if version < CALIBRATION_FORMAT:
            data["migrated_from"] = version
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}  # e.g. `support`, stored by a reverted version of format 4
        data["bootstrap"] = [(list(a), float(b)) for a, b in data["bootstrap"]]
        data["features"] = tuple(data["features"])
        data["presence"] = None if data.get("presence") is None else tuple(data["presence"])
        return cls(**data)

    def stale(self, label_counts: dict[str, int], rule: RankingRule = DEFAULT_RULE) -> bool:
        """Recompute for another ranking rule, or when the gallery grew or shrank by >10%, a disorder
        appeared or vanished, or one changed by >20%."""
        old, new = self.label_counts, label_counts
        if self.migrated_from is not None or tuple(self.features) != FEATURES:
            return True
        if self.rule != rule or set(old) != set(new):
            return True
        total_old, total_new = sum(old.values()), sum(new.values())
        if abs(total_new - total_old) > 0.1 * max(1, total_old):
            return True
        return any(abs(new[k] - old[k]) > max(1, 0.2 * old[k]) for k in old)


class CalibrationError(Bone2GeneError, ValueError):
    """Too little data to calibrate; the message says how much is needed."""


class CalibrationFormatError(Bone2GeneError, ValueError):
    """A stored calibration in a format this version cannot read."""


# Formats of a stored calibration. 1: Platt scaling of the score alone (`coef` a number). 2: a
# logistic model of the score features (`features`). 3: the in-gallery factor (`presence`).
# 4: relative to the first-ranked disorder's own spread (`typical_log_distance`). 5: "no close
# match" also beyond that spread (`no_match_relative_threshold`); the version is written from 5 on.
CALIBRATION_FORMAT = 5


def stored_format(data: dict) -> int:
    """The format a calibration was stored in; those stored before the version was written are
    told apart by the field each format added."""
    if "format_version" in data:
        return int(data["format_version"])
    if not isinstance(data["coef"], list):
        return 1
    for version, added in ((2, "presence"), (3, "typical_log_distance"), (4, "no_match_relative_threshold")):
        if data.get(added) is None:
            return version
    return CALIBRATION_FORMAT


def _from_platt(data: dict) -> dict:
    """1 -> 2: the score's slope becomes the one coefficient of the one feature "score"."""
    return {**data, "coef": [data["coef"]], "features": ["score"], "bootstrap": [([a], b) for a, b in data["bootstrap"]]}


def _unchanged(data: dict) -> dict:
    """A format that added a field the older one lacks: left empty, read as the older format read."""
    return {"features": list(FEATURES), **data}


_MIGRATIONS = {1: _from_platt, 2: _unchanged, 3: _unchanged, 4: _unchanged}


def _logistic(x: np.ndarray, coef: np.ndarray, intercept: float) -> np.ndarray:
    """sigmoid(x @ coef + intercept); NaN rows (no score) stay NaN."""
    return 1.0 / (1.0 + np.exp(-(x @ coef + intercept)))


@dataclass(frozen=True)
class LeaveOnePatientOut:
    """Each query row's per-disorder neighbourhood with its own patient's cases left out."""

    neighbourhood: Neighbourhood  # (Q, L) under the rule; -inf scores where a disorder has no other patient's case
    own: np.ndarray  # (Q,) the query's own disorder code
    usable: np.ndarray  # (Q,) bool: its own disorder has another patient

    def subset(self, rows: np.ndarray) -> LeaveOnePatientOut:
        return LeaveOnePatientOut(self.neighbourhood.subset(rows), self.own[rows], self.usable[rows])


def lopo_scores(
    embeddings: np.ndarray, labels: list[str], patients: list[str], queries: np.ndarray, rule: RankingRule = DEFAULT_RULE
) -> LeaveOnePatientOut:
    """For each query row: per-disorder neighbourhood under `rule` (other patients only) and its own code."""
    index = LabelIndex.of(labels)
    patients_arr = np.asarray(patients)
    sims = embeddings[queries] @ embeddings.T
    sims[patients_arr[queries][:, None] == patients_arr[None, :]] = -np.inf
    neighbourhood = Neighbourhood.from_similarities(sims, index, rule)
    own = index.codes[queries]
    usable = np.isfinite(neighbourhood.scores[np.arange(len(queries)), own])
    return LeaveOnePatientOut(neighbourhood, own, usable)


def _pairs(lopo: LeaveOnePatientOut) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened (features, is_correct, query index) over finite disorder scores."""
    q, n_labels = lopo.neighbourhood.scores.shape
    correct = np.zeros((q, n_labels), dtype=bool)
    correct[np.arange(q), lopo.own] = True
    finite = np.isfinite(lopo.neighbourhood.scores)
    query_of = np.repeat(np.arange(q), n_labels).reshape(q, n_labels)
    return label_features(lopo.neighbourhood)[finite], correct[finite], query_of[finite]


def _fit(features: np.ndarray, correct: np.ndarray, class_weight: str | None = None) -> tuple[list[float], float]:
    """Logistic regression on standardised features, returned on the raw features' scale."""
    mean, spread = features.mean(axis=0), features.std(axis=0)
    spread = np.where(spread > 0, spread, 1.0)
    model = LogisticRegression(C=REGULARISATION, max_iter=500, class_weight=class_weight)
    model.fit((features - mean) / spread, correct.astype(int))
    coef = model.coef_[0] / spread
    return [float(c) for c in coef], float(model.intercept_[0] - (coef * mean).sum())


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
    lopo = lopo_scores(embeddings, labels, patients, queries, rule)
    lopo, queries = lopo.subset(lopo.usable), queries[lopo.usable]
    if len(queries) < 10:
        raise CalibrationError(f"only {len(queries)} cases have another patient with the same disorder; calibration needs at least 10")
    features, correct, query_of = _pairs(lopo)
    coef, intercept = _fit(features, correct)
    boot = []
    for _ in range(bootstraps):
        chosen = rng.choice(len(queries), len(queries), replace=True)
        weight = np.bincount(chosen, minlength=len(queries))[query_of]
        keep = weight > 0
        reps = np.repeat(np.arange(len(features))[keep], weight[keep])
        if correct[reps].all() or not correct[reps].any():
            continue
        boot.append(_fit(features[reps], correct[reps]))
    typical = _typical_log_distances(lopo)
    relative = _relative_distances(lopo, typical)
    flag = _no_match_thresholds(lopo, *relative)
    presence = _fit_presence(*relative)
    reliability, ece = _cross_fitted_reliability(lopo, np.asarray(patients)[queries], rng)
    return Calibration(
        coef,
        intercept,
        boot,
        flag.similarity,
        reliability,
        ece,
        len(queries),
        len(counts),
        counts,
        RankingRule(rule).value,
        flag.fires_when_absent,
        flag.off_when_right,
        no_match_off_when_present=flag.off_when_present,
        presence=presence,
        typical_log_distance=dict(zip(lopo.neighbourhood.names, (float(t) for t in typical), strict=True)),
        no_match_relative_threshold=flag.relative,
    )


def _absent_side(lopo: LeaveOnePatientOut) -> tuple[np.ndarray, np.ndarray]:
    """Per query with its own disorder's cases removed: the nearest diagnosed similarity (-inf where
    no other disorder is left) and the first-ranked disorder's code."""
    rows = np.arange(len(lopo.own))
    nearest, scores = lopo.neighbourhood.nearest.copy(), lopo.neighbourhood.scores.copy()
    nearest[rows, lopo.own] = -np.inf
    scores[rows, lopo.own] = -np.inf
    return nearest.max(axis=1), scores.argmax(axis=1)


def _nearest_present_and_absent(lopo: LeaveOnePatientOut) -> tuple[np.ndarray, np.ndarray]:
    """The nearest diagnosed case's similarity per query with its disorder in the gallery, and
    (where another disorder is left) with that disorder's cases removed."""
    absent, _ = _absent_side(lopo)
    return lopo.neighbourhood.nearest_diagnosed, absent[np.isfinite(absent)]


def _typical_log_distances(lopo: LeaveOnePatientOut) -> np.ndarray:
    """(L,) per disorder code: the median log(1 - similarity) from its queries to their nearest case of
    the same disorder (another patient's); a disorder without such queries gets the median of all.
    A loose disorder (an unseen syndrome the model never learnt to pull together) has a large one,
    so that a query far from every case of it is not read as "absent" for that alone
    (docs/decisions/calibration.md)."""
    own = log_distance(lopo.neighbourhood.nearest[np.arange(len(lopo.own)), lopo.own])
    n_labels = lopo.neighbourhood.scores.shape[1]
    overall = float(np.median(own)) if len(own) else 0.0
    return np.array([float(np.median(own[lopo.own == code])) if (lopo.own == code).any() else overall for code in range(n_labels)])


def _relative_distances(lopo: LeaveOnePatientOut, typical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The presence feature on both leave-one-patient-out sides: log(1 - nearest diagnosed similarity)
    minus the first-ranked disorder's typical distance, with the query's disorder in the gallery, and
    (where another disorder is left) with that disorder's cases removed."""
    absent, absent_top = _absent_side(lopo)
    kept = np.isfinite(absent)
    present_x = log_distance(lopo.neighbourhood.nearest_diagnosed) - typical[lopo.neighbourhood.top()]
    absent_x = log_distance(absent[kept]) - typical[absent_top[kept]]
    return present_x, absent_x


def _fit_presence(present: np.ndarray, absent: np.ndarray) -> tuple[float, float]:
    """Logistic P(present | relative nearest distance), both sides weighted equally (even prior odds)."""
    x = np.concatenate([present, absent])[:, None]
    present_side = np.concatenate([np.ones(len(present), bool), np.zeros(len(absent), bool)])
    (coef,), intercept = _fit(x, present_side, class_weight="balanced")
    return coef, intercept


@dataclass(frozen=True)
class _NoMatchThresholds:
    similarity: float  # fires below it...
    relative: float  # ...or above it, on the presence feature
    fires_when_absent: float  # leave-one-patient-out shares
    off_when_right: float
    off_when_present: float


def _no_match_thresholds(lopo: LeaveOnePatientOut, present_relative: np.ndarray, absent_relative: np.ndarray) -> _NoMatchThresholds:
    """Both thresholds of "no close match" and its leave-one-patient-out rates, from the nearest
    similarities and the presence feature on both sides (`_relative_distances`). The relative one
    flags the `NO_MATCH_FAR_SHARE` of present queries farthest beyond their first-ranked disorder's
    spread; the similarity one is the 95th percentile of the absent side, lowered where needed so
    that the two together stay off for `NO_MATCH_KEEP_OFF` of present queries."""
    present, absent = _nearest_present_and_absent(lopo)
    relative = float(np.quantile(present_relative, 1 - NO_MATCH_FAR_SHARE))
    far = present_relative > relative
    allowed = int(np.floor((1 - NO_MATCH_KEEP_OFF) * len(present))) - int(far.sum())
    rest = np.sort(present[~far])
    similarity = float(rest[max(allowed, 0)])  # flags the `allowed` lowest of the rest (strictly below)
    similarity = min(similarity, float(np.quantile(absent, NO_MATCH_QUANTILE))) if absent.size else similarity
    flagged_present = (present < similarity) | far
    right = lopo.neighbourhood.top() == lopo.own
    share = lambda values: float(np.mean(values)) if values.size else float("nan")  # noqa: E731
    return _NoMatchThresholds(
        similarity,
        relative,
        share((absent < similarity) | (absent_relative > relative)),
        share(~flagged_present[right]),
        share(~flagged_present),
    )


def _cross_fitted_reliability(lopo: LeaveOnePatientOut, patients: np.ndarray, rng: np.random.Generator) -> tuple[list[dict], float]:
    unique = np.unique(patients)
    fold_of = dict(zip(unique, rng.integers(0, 2, len(unique)), strict=True))
    folds = np.array([fold_of[p] for p in patients])
    predicted, observed = [], []
    for fold in (0, 1):
        train, test = folds != fold, folds == fold
        if not train.any() or not test.any():
            continue
        x_train, c_train, _ = _pairs(lopo.subset(train))
        if c_train.all() or not c_train.any():
            continue
        coef, intercept = _fit(x_train, c_train)
        x_test, c_test, _ = _pairs(lopo.subset(test))
        predicted.append(_logistic(x_test, np.asarray(coef), intercept))
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
