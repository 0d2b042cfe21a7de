"""How each compared method scores the gallery's disorders for a set of queries.

A scorer returns a (queries x disorders) score matrix over the gallery's `LabelIndex`;
-inf marks a disorder it cannot score. Embedding scorers use the service's ranking rules
(`matcher.rank`), so the evaluation measures what a user gets. The softmax classifier is
the closed-set baseline: trained on the gallery's frequent cases, it cannot name a disorder
it was not trained on, which is what a gallery that grows without retraining is for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from matcher.multi_image import combined_by_patient
from matcher.rank import DEFAULT_RULE, LabelIndex, RankingRule, label_ranks, label_scores
from matcher.score_features import Neighbourhood


class Scorer(Protocol):
    def scores(self, gallery: np.ndarray, queries: np.ndarray, labels: LabelIndex) -> np.ndarray: ...


@dataclass
class EmbeddingScorer:
    """Cosine similarities of unit vectors, reduced per disorder by a ranking rule."""

    vectors: np.ndarray
    patients: np.ndarray
    rule: RankingRule = DEFAULT_RULE

    def similarities(self, gallery: np.ndarray, queries: np.ndarray) -> np.ndarray:
        sims = self.vectors[queries] @ self.vectors[gallery].T
        sims[self.patients[queries][:, None] == self.patients[gallery][None, :]] = -np.inf
        return sims

    def scores(self, gallery: np.ndarray, queries: np.ndarray, labels: LabelIndex) -> np.ndarray:
        return label_scores(self.similarities(gallery, queries), labels, self.rule)[0]

    def neighbourhood(self, gallery: np.ndarray, queries: np.ndarray, labels: LabelIndex) -> Neighbourhood:
        """What the calibrated probabilities are read from (`matcher.score_features`), under this rule."""
        return Neighbourhood.from_similarities(self.similarities(gallery, queries), labels, self.rule)


@dataclass
class PatientScorer:
    """Multi-image queries: a patient's films combined into one point (`matcher.multi_image`) on both
    sides, so the gallery holds one point per patient; pass one query row per patient. Patients
    never straddle a draw's gallery and test sides, so "all of the patient's films" is well defined."""

    vectors: np.ndarray
    patients: np.ndarray
    disorders: np.ndarray
    rule: RankingRule = DEFAULT_RULE
    _combined: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        ids, vectors, _ = combined_by_patient(self.vectors, self.patients)
        self._combined = dict(zip(ids, vectors, strict=True))

    def scores(self, gallery: np.ndarray, queries: np.ndarray, labels: LabelIndex) -> np.ndarray:
        gallery_patients, first = np.unique(self.patients[gallery].astype(str), return_index=True)
        patient_labels = LabelIndex.of(list(self.disorders[gallery][first]))
        assert patient_labels.names == labels.names  # the same disorders, one point per patient instead of per film
        gallery_vectors = np.stack([self._combined[p] for p in gallery_patients])
        query_vectors = np.stack([self._combined[str(p)] for p in self.patients[queries]])
        sims = query_vectors @ gallery_vectors.T
        sims[self.patients[queries].astype(str)[:, None] == gallery_patients[None, :]] = -np.inf
        return label_scores(sims, patient_labels, self.rule)[0]


@dataclass
class RandomScorer:
    """Every disorder a uniform random score: the chance level, k / disorders."""

    seed: int = 0

    def scores(self, gallery: np.ndarray, queries: np.ndarray, labels: LabelIndex) -> np.ndarray:
        return np.random.default_rng(self.seed + len(gallery) + len(queries)).random((len(queries), len(labels.names)))


@dataclass
class SoftmaxScorer:
    """A multinomial logistic regression (softmax) on standardised pooled features, fitted on the
    gallery's cases of the disorders in `trained_on` (refitted per gallery, kept while it repeats)."""

    features: np.ndarray
    disorders: np.ndarray
    trained_on: frozenset[str]
    seed: int = 0
    _fitted: dict[bytes, tuple[object, list[str]]] = field(default_factory=dict, repr=False)

    def _classifier(self, gallery: np.ndarray) -> tuple[object, list[str]] | None:
        rows = gallery[np.isin(self.disorders[gallery], list(self.trained_on))]
        if len(np.unique(self.disorders[rows])) < 2:
            return None
        key = rows.tobytes()
        if key not in self._fitted:
            classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, random_state=self.seed))
            classifier.fit(self.features[rows], self.disorders[rows])
            self._fitted = {key: (classifier, [str(c) for c in classifier.classes_])}
        return self._fitted[key]

    def scores(self, gallery: np.ndarray, queries: np.ndarray, labels: LabelIndex) -> np.ndarray:
        result = np.full((len(queries), len(labels.names)), -np.inf)
        fitted = self._classifier(gallery)
        if fitted is None or not len(queries):
            return result
        classifier, classes = fitted
        probabilities = classifier.predict_proba(self.features[queries])
        column = {name: i for i, name in enumerate(labels.names)}
        for j, name in enumerate(classes):
            if name in column:
                result[:, column[name]] = probabilities[:, j]
        return result


@dataclass
class Ranked:
    """One setting of one draw for one method: each query's rank of its true disorder."""

    queries: np.ndarray  # table rows
    ranks: np.ndarray
    codes: np.ndarray  # the true disorder's code in `labels`
    labels: LabelIndex
    top_scores: np.ndarray  # the best score per query (what "no close match" is judged from)
    scores: np.ndarray  # (Q, L) every disorder's score (what a probability is read from)


def rank_setting(scorer: Scorer, disorders: np.ndarray, gallery: np.ndarray, queries: np.ndarray) -> Ranked:
    """Score and rank: `disorders[row]` is each table row's disorder (every query's is in the gallery)."""
    labels = LabelIndex.of(list(disorders[gallery]))
    lookup = {name: i for i, name in enumerate(labels.names)}
    codes = np.array([lookup[str(d)] for d in disorders[queries]], dtype=np.int64)
    scores = scorer.scores(gallery, queries, labels) if len(queries) else np.zeros((0, len(labels.names)))
    ranks = label_ranks(scores, codes) if len(queries) else np.zeros(0, np.int64)
    top = scores.max(axis=1) if len(queries) else np.zeros(0)
    return Ranked(queries, ranks, codes, labels, top, scores)
