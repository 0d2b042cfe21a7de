"""Image, phenotype, candidate genes and the measured hand as evidence for each disorder, combined into one score.

For a query and each disorder of the gallery, five numbers (`EvidenceFeatures`):
- **image**: the ranking rule's score, standardised over the disorders of this query (how far
  above the others this disorder stands; comparable across models and galleries);
- **phenotype**: the Resnik/funSimAvg similarity (`index.hpo`) of the query's HPO terms to the
  disorder's annotations, standardised the same way (0 without terms or annotations);
- **excluded**: how many of the query's excluded terms the disorder is annotated with;
- **gene**: +1 when one of the disorder's genes is in the candidate list, -1 when a list
  was given and none is, 0 without a list;
- **profile**: how much better the disorder's typical pattern profile explains the query's
  measured bones than the unaffected hand does (`index.profile_evidence`; 0 without a profile).
  Not standardised: a normal profile leaves every disorder at or below 0.

`EvidenceModel` is a logistic model over these (fitted on simulated patients,
`training/synth/phenotypes.py`, never on the cases it is reported on): its logit is the
combined score, each coefficient x feature is that source's contribution, and the sources
alone stay available (the features themselves).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np

from index import hpo
from index.catalogue import Disorder
from index.profile_evidence import ProfileEvidence
from matcher.rank import RankedLabel

SOURCES = ("image", "phenotype", "excluded", "gene", "profile")


def _standardised(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """z-scores over the present entries; 0 elsewhere and where they do not vary."""
    out = np.zeros(len(values))
    if present.sum() >= 2:
        mean, sd = values[present].mean(), values[present].std()
        if sd > 1e-9:
            out[present] = (values[present] - mean) / sd
    return out


@dataclass
class EvidenceFeatures:
    """One row per disorder in `disorders`; columns in `SOURCES` order."""

    disorders: list[str]
    values: np.ndarray  # (D, 5)
    phenotype_similarity: list[float | None]  # raw Resnik/funSimAvg (None: no terms or no annotations)
    gene_hits: list[list[str]]  # the disorder's genes found in the candidate list


def evidence_features(
    disorders: Sequence[Disorder],
    image_scores: Sequence[float | None],
    observed: Sequence[hpo.Term] = (),
    excluded: Sequence[hpo.Term] = (),
    candidate_genes: Sequence[str] | None = None,
    profile_match: np.ndarray | None = None,
) -> EvidenceFeatures:
    """The features of every disorder for one query (`image_scores[i]`: the rule's score of
    `disorders[i]`, None without one; `profile_match[i]`: `TypicalProfiles.match` of it, None without a profile)."""
    image = np.array([np.nan if s is None else float(s) for s in image_scores])
    present = np.isfinite(image)
    image_z = _standardised(np.where(present, image, 0.0), present)
    if present.any():
        image_z[~present] = image_z[present].min()  # no case within reach: as weak as the weakest
    raw = [
        hpo.similarity(list(observed), [hpo.Term(t, "") for t in d.phenotypes]) if observed and d.phenotypes else None for d in disorders
    ]
    phenotype = _standardised(np.array([0.0 if r is None else r for r in raw]), np.array([r is not None for r in raw]))
    excluded_ids = {t.id for t in excluded}
    excluded_count = np.array([len(excluded_ids & set(d.phenotypes)) for d in disorders], dtype=float)
    wanted = None if candidate_genes is None else {g.strip().upper() for g in candidate_genes}
    hits = [[] if wanted is None else sorted(set(d.genes) & wanted) for d in disorders]
    gene = np.array([0.0 if wanted is None else (1.0 if h else -1.0) for h in hits])
    profile = np.zeros(len(disorders)) if profile_match is None else np.nan_to_num(np.asarray(profile_match, float))
    values = np.column_stack([image_z, phenotype, excluded_count, gene, profile])
    return EvidenceFeatures([d.id for d in disorders], values, raw, hits)


@dataclass
class EvidenceModel:
    coefficients: dict[str, float]  # per source
    intercept: float
    fitted_on: str  # what data, so a report can say it is not the data being scored

    def contributions(self, features: EvidenceFeatures) -> np.ndarray:
        """(D, 5): each source's share of the logit (a source the model was not fitted with weighs 0)."""
        return features.values * self.weights()

    def weights(self) -> np.ndarray:
        return np.array([self.coefficients.get(s, 0.0) for s in SOURCES])

    def logits(self, features: EvidenceFeatures) -> np.ndarray:
        return self.contributions(features).sum(axis=1) + self.intercept

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def load(cls, path: Path) -> EvidenceModel:
        return cls(**json.loads(Path(path).read_text()))


DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "evidence_model.json"  # scripts/install_evidence_model.py


@cache
def default_model() -> EvidenceModel:
    """Read once per process: every query with terms or genes uses it."""
    return EvidenceModel.load(DEFAULT_MODEL_PATH)


@dataclass
class ClinicalFindings:
    """What a clinician brings besides the film: HPO terms seen and excluded, an exome's candidate genes."""

    observed: list[hpo.Term]
    excluded: list[hpo.Term]
    candidate_genes: list[str] | None  # None: no exome; [] would say "an exome found nothing"

    @classmethod
    def of(
        cls, observed: Sequence[str] = (), excluded: Sequence[str] = (), candidate_genes: Sequence[str] | None = None
    ) -> ClinicalFindings:
        """Checked: HPO ids resolved (unknown/obsolete refused), a term both seen and excluded refused, genes upper-cased."""
        seen, absent = hpo.resolve_terms(observed), hpo.resolve_terms(excluded)
        both = sorted({t.id for t in seen} & {t.id for t in absent})
        if both:
            raise hpo.PhenotypeError(f"{', '.join(both)} both observed and excluded; keep one")
        genes = None if candidate_genes is None else sorted({g.strip().upper() for g in candidate_genes if g.strip()})
        return cls(seen, absent, genes)

    def empty(self) -> bool:
        return not self.observed and not self.excluded and self.candidate_genes is None


def combine_ranking(
    ranked: list[RankedLabel],
    catalogue: Sequence[Disorder],
    findings: ClinicalFindings,
    model: EvidenceModel,
    profile: ProfileEvidence | None = None,
) -> list[RankedLabel]:
    """Re-rank `ranked` (`matcher.rank.RankedLabel`s by the image) by the combined logit; each entry
    gets `sources`: the combined probability, every source's contribution and what it found
    (the similar terms, the listed genes, the profile's match and the disorder's typical profile)."""
    entries = {d.id: d for d in catalogue}
    disorders = [entries.get(r.label) or Disorder(id=r.label, name=r.name or r.label) for r in ranked]
    labels = [r.label for r in ranked]
    matches = profile.match(labels) if profile is not None and profile.usable() else None
    features = evidence_features(
        disorders, [r.score for r in ranked], findings.observed, findings.excluded, findings.candidate_genes, matches
    )
    logits, parts = model.logits(features), model.contributions(features)
    for i, entry in enumerate(ranked):
        entry.sources = {
            "combined_probability": float(1 / (1 + np.exp(-logits[i]))),
            "contributions": {s: float(parts[i, j]) for j, s in enumerate(SOURCES)},
            "phenotype_similarity": features.phenotype_similarity[i],
            "gene_hits": features.gene_hits[i],
            "profile_match": None if matches is None else round(float(matches[i]), 3),
            "typical_profile": None if profile is None else profile.typical(labels[i]),
        }
    order = sorted(range(len(ranked)), key=lambda i: (-logits[i], ranked[i].rank))
    result = [ranked[i] for i in order]
    for rank, entry in enumerate(result, start=1):
        entry.rank = rank
    return result


def combine_gene_ranking(
    genes: list[RankedLabel], disorders: list[RankedLabel], catalogue: Sequence[Disorder], findings: ClinicalFindings
) -> list[RankedLabel]:
    """Genes ordered by the best combined probability of a disorder they cause (`disorders` after
    `combine_ranking`); each says through which disorder and whether the exome listed it. Genes seen
    only on gallery cases (no catalogue disorder names them) follow, in their image order."""
    causes = {d.id: d.genes for d in catalogue}
    wanted = set(findings.candidate_genes or [])
    best: dict[str, tuple[float, str]] = {}
    for entry in disorders:
        probability = (entry.sources or {}).get("combined_probability")
        for gene in causes.get(entry.label, []) if probability is not None else []:
            if gene not in best or probability > best[gene][0]:
                best[gene] = (probability, entry.label)
    existing = {g.label: g for g in genes}
    ranked = []
    for gene, (probability, via) in sorted(best.items(), key=lambda item: (-item[1][0], item[0])):
        entry = existing.get(gene) or RankedLabel(gene, None, 0, None, [], 0)
        entry.sources = {"combined_probability": probability, "via_disorder": via, "in_candidates": gene in wanted}
        ranked.append(entry)
    ranked += [g for g in genes if g.label not in best]
    for rank, entry in enumerate(ranked, start=1):
        entry.rank = rank
    return ranked


def fit_evidence_model(rows: np.ndarray, correct: np.ndarray, fitted_on: str) -> EvidenceModel:
    """Logistic regression over stacked feature rows (query x disorder) and whether each disorder was the right one."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=1000).fit(rows, correct.astype(int))
    return EvidenceModel({s: float(c) for s, c in zip(SOURCES, model.coef_[0], strict=True)}, float(model.intercept_[0]), fitted_on)
