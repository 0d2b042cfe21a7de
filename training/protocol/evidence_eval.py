"""Does adding HPO terms and candidate genes to the image rank disorders better?

Per random draw (`splits`), each query gets `index.evidence` features for every disorder of
the gallery; a combination of sources ranks by the logit of an `EvidenceModel` fitted on
that combination (on another cohort: `fit_combinations`), a single source by its own
feature. Top-k is macro-averaged over disorders, as in the rest of the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from index import hpo
from index.catalogue import Disorder
from index.evidence import SOURCES, EvidenceModel, evidence_features, fit_evidence_model
from matcher.rank import DEFAULT_RULE, LabelIndex, RankingRule, label_ranks, label_scores, macro_topk
from training.protocol.splits import Draw

# the evidence a clinician brings, and the features each uses ("excluded" rides with the phenotype)
SOURCE_SETS = {
    "image": ("image",),
    "phenotype": ("phenotype", "excluded"),
    "genes": ("gene",),
    "image + phenotype": ("image", "phenotype", "excluded"),
    "image + genes": ("image", "gene"),
    "phenotype + genes": ("phenotype", "excluded", "gene"),
    "image + phenotype + genes": SOURCES,
}


def _query_evidence(row: pd.Series) -> tuple[list[hpo.Term], list[hpo.Term], list[str] | None]:
    observed = [hpo.Term(t, "") for t in hpo.split_terms(row.get("hpo"))]
    excluded = [hpo.Term(t, "") for t in hpo.split_terms(row.get("hpo_excluded"))]
    genes = hpo.split_terms(row.get("candidate_genes")) or None
    return observed, excluded, genes


def draw_features(
    vectors: np.ndarray,
    table: pd.DataFrame,
    catalogue: Sequence[Disorder],
    gallery: np.ndarray,
    queries: np.ndarray,
    rule: RankingRule = DEFAULT_RULE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (Q, D, 4), true disorder code per query (Q,), group of each query row) for one gallery/query split."""
    disorders = table["disorder"].astype(str).to_numpy()
    labels = LabelIndex.of(list(disorders[gallery]))
    entries = {d.id: d for d in catalogue}
    in_gallery = [entries.get(name) or Disorder(id=name, name=f"{name} (not catalogued)") for name in labels.names]
    sims = vectors[queries] @ vectors[gallery].T
    patients = table["patient_id"].astype(str).to_numpy()
    sims[patients[queries][:, None] == patients[gallery][None, :]] = -np.inf
    scores = label_scores(sims, labels, rule)[0]
    features = []
    for q, row in zip(range(len(queries)), table.iloc[queries].itertuples(index=False), strict=True):
        observed, excluded, genes = _query_evidence(pd.Series(row._asdict()))
        image = [None if not np.isfinite(s) else float(s) for s in scores[q]]
        features.append(evidence_features(in_gallery, image, observed, excluded, genes).values)
    lookup = {name: i for i, name in enumerate(labels.names)}
    codes = np.array([lookup[d] for d in disorders[queries]])
    return np.stack(features) if features else np.zeros((0, len(labels.names), len(SOURCES))), codes, queries


def _columns(sources: Sequence[str]) -> list[int]:
    return [SOURCES.index(s) for s in sources]


def fit_combinations(features: np.ndarray, codes: np.ndarray, fitted_on: str) -> dict[str, EvidenceModel]:
    """One logistic model per source set, from stacked (query, disorder) rows."""
    q, d, f = features.shape
    correct = np.zeros((q, d), bool)
    correct[np.arange(q), codes] = True
    models = {}
    for name, sources in SOURCE_SETS.items():
        rows = np.zeros((q * d, f))
        rows[:, _columns(sources)] = features.reshape(q * d, f)[:, _columns(sources)]
        models[name] = fit_evidence_model(rows, correct.reshape(-1), fitted_on)
    return models


def source_ranks(features: np.ndarray, codes: np.ndarray, model: EvidenceModel, sources: Sequence[str]) -> np.ndarray:
    """Rank of the true disorder when only `sources` are used (the others zeroed)."""
    masked = np.zeros_like(features)
    masked[..., _columns(sources)] = features[..., _columns(sources)]
    weights = np.array([model.coefficients[s] for s in SOURCES])
    logits = masked @ weights
    return label_ranks(logits, codes)


def topk_by_source(
    features: np.ndarray, codes: np.ndarray, models: dict[str, EvidenceModel], ks: Sequence[int] = (1, 5, 10)
) -> dict[str, dict[int, float]]:
    return {name: macro_topk(source_ranks(features, codes, models[name], sources), codes, ks) for name, sources in SOURCE_SETS.items()}


def all_draw_features(
    vectors: np.ndarray, table: pd.DataFrame, catalogue: Sequence[Disorder], draws: Sequence[Draw], setting: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    return [draw_features(vectors, table, catalogue, *draw.setting(setting))[:2] for draw in draws]


def pooled(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Draws stacked for fitting (the same gallery disorders in every draw of a setting)."""
    return np.concatenate([f for f, _ in parts]), np.concatenate([c for _, c in parts])
