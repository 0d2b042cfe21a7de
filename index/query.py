"""One query against a gallery: similar cases, then disorders and genes ranked with evidence,
a calibrated probability per disorder and an explicit "no close match".

A disorder's probability is P(the query's disorder is in the gallery) x P(it is this one, if so):
the first factor, read from the nearest diagnosed case's distance relative to how close the
first-ranked disorder's own cases lie to each other, is reported on its own too.

The ranking searches the `depth` nearest cases (all of them for galleries up to that
size, so the ranking is then exact); a disorder with no case that close is listed last
without a score. Calibration is computed from the gallery itself and cached in it; it is
recomputed when the gallery has changed enough (`Calibration.stale`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from index.evidence import ClinicalFindings, combine_gene_ranking, combine_ranking, default_model
from index.filters import Filters
from index.profile_evidence import HandProfile, ProfileEvidence, gallery_profiles, profile_z
from index.store import Gallery, Hit
from matcher.calibration import Calibration, CalibrationError, fit_calibration
from matcher.rank import DEFAULT_RULE, RankedLabel, RankingRule, rank_labels
from matcher.score_features import Neighbourhood

DEFAULT_DEPTH = 4096


@dataclass
class SimilarCase:
    case_id: str
    similarity: float
    disorder: str | None
    disorder_name: str | None
    gene: str | None
    sex: str
    age_months: float
    source: str

    def to_json(self) -> dict:
        return {**self.__dict__, "similarity": round(self.similarity, 4)}


@dataclass
class QueryResult:
    cases: list[SimilarCase]
    disorders: list[RankedLabel]
    genes: list[RankedLabel]
    no_close_match: bool
    calibration_note: str
    searched_cases: int
    gallery_cases: int
    in_gallery_probability: float | None = None  # P(the query's disorder is one of the gallery's); None: not calibrated
    profile_z: np.ndarray | None = None  # (19,) the query's profile against the gallery's norms, as the ranking read it

    def to_json(self) -> dict:
        return {
            "cases": [c.to_json() for c in self.cases],
            "disorders": [{"disorder": d.label, **d.to_json()} for d in self.disorders],
            "genes": [{"gene": g.label, **g.to_json()} for g in self.genes],
            "no_close_match": self.no_close_match,
            "calibration": self.calibration_note,
            "searched_cases": self.searched_cases,
            "gallery_cases": self.gallery_cases,
            "in_gallery_probability": None if self.in_gallery_probability is None else round(self.in_gallery_probability, 4),
            "profile_z": None if self.profile_z is None else [None if not np.isfinite(v) else round(float(v), 2) for v in self.profile_z],
        }


def calibration_for(gallery: Gallery, seed: int = 0, rule: RankingRule = DEFAULT_RULE) -> Calibration | None:
    """The gallery's calibration of `rule`'s scores, recomputed and stored when stale; None when too little data."""
    table = gallery.cases()
    diagnosed = table[table["disorder"].notna()]
    counts = {str(k): int(v) for k, v in diagnosed["disorder"].value_counts().items()}
    stored = gallery.stored_calibration()
    if stored is not None:
        calibration = Calibration.from_json(stored[1])
        if not calibration.stale(counts, rule):
            return calibration
    if diagnosed.empty:
        return None
    vectors = gallery.vectors_of(diagnosed["row"].tolist())
    try:
        calibration = fit_calibration(
            vectors, diagnosed["disorder"].astype(str).tolist(), diagnosed["patient_id"].astype(str).tolist(), seed=seed, rule=rule
        )
    except CalibrationError:
        return None
    gallery.store_calibration(calibration.to_json())
    return calibration


def _neighbourhood(disorders: list[RankedLabel], similarities: list[float], case_labels: list[str | None]) -> Neighbourhood:
    """What the ranked disorders' probabilities are read from: their scores and cases, and the
    query's searched cases (nearest first; None: undiagnosed)."""
    scores = np.array([-np.inf if d.score is None else d.score for d in disorders])
    counts = np.array([d.cases_in_gallery for d in disorders], dtype=float)
    return Neighbourhood.of_ranking(similarities, case_labels, [d.label for d in disorders], scores, counts)


def _attach_probabilities(disorders: list[RankedLabel], calibration: Calibration, neighbourhood: Neighbourhood, in_gallery: float) -> None:
    """Each scored disorder's calibrated probability, read against the query's other disorders and
    its neighbourhood, and weighed by the probability that the query's disorder is in the gallery at all."""
    p, lo, hi = (in_gallery * values for values in calibration.probabilities(neighbourhood))
    for i, entry in enumerate(disorders):
        if entry.score is not None:
            entry.probability, entry.interval = float(p[i]), (float(lo[i]), float(hi[i]))


def _similar_cases(meta: pd.DataFrame, scores: list[float], top_k: int) -> list[SimilarCase]:
    """The `top_k` nearest cases (`meta`: their rows of `Gallery.cases()`, nearest first) as evidence."""
    return [
        SimilarCase(
            str(r["case_id"]),
            s,
            None if isinstance(r["disorder"], float) else r["disorder"],
            None if isinstance(r["disorder_name"], float) else r["disorder_name"],
            None if isinstance(r["gene"], float) else r["gene"],
            str(r["sex"]),
            float(r["age_months"]),
            str(r["source"]),
        )
        for (_, r), s in zip(meta.head(top_k).iterrows(), scores[:top_k], strict=False)
    ]


def _profile_evidence(gallery: Gallery, considered: pd.DataFrame, hand: Sequence[HandProfile]) -> ProfileEvidence | None:
    """The query's profile against the typical profiles of the cases it is ranked among (None: nothing to compare)."""
    if not hand:
        return None
    lengths = gallery.bones.lengths()
    if lengths.empty:
        return None
    norms = gallery.bones.norms()
    evidence = ProfileEvidence(profile_z(hand, norms), gallery_profiles(considered.reset_index(), lengths, norms))
    return evidence if evidence.usable() else None


def query(
    gallery: Gallery,
    embedding: np.ndarray,
    top_k: int = 10,
    filters: Filters | None = None,
    depth: int = DEFAULT_DEPTH,
    calibration: Calibration | None = None,
    exclude_patient: str | None = None,
    rule: RankingRule = DEFAULT_RULE,
    findings: ClinicalFindings | None = None,
    hand: Sequence[HandProfile] = (),
) -> QueryResult:
    """Rank the gallery's disorders and genes for one query embedding by `rule` (`calibration`,
    when given, must be of the same rule: `calibration_for(gallery, rule=rule)`). With `findings`
    (HPO terms, candidate genes) or the query's measured bones (`hand`, one per film) disorders and
    genes are ordered by the combined score (`index.evidence`)."""
    if calibration is not None and calibration.rule != rule:
        raise ValueError(f"the calibration maps {calibration.rule!r} scores, not {rule.value!r} ones")
    hits: list[Hit] = gallery.search(embedding, max(top_k, depth), filters)
    table = gallery.cases().set_index("row")
    if exclude_patient is not None:
        hits = [h for h in hits if table.at[h.row, "patient_id"] != exclude_patient]
    rows = [h.row for h in hits]
    meta = table.loc[rows] if rows else table.iloc[0:0]
    scores = [h.similarity for h in hits]
    considered = table if filters is None or not filters.active() else table.loc[table.index.isin(gallery.cases(filters)["row"])]
    if exclude_patient is not None:  # its cases are not there to be found, nor counted in a disorder's density
        considered = considered[considered["patient_id"] != exclude_patient]
    disorder_counts = {str(k): int(v) for k, v in considered["disorder"].dropna().value_counts().items()}
    gene_counts = {str(k): int(v) for k, v in considered["gene"].dropna().value_counts().items()}
    names = {d.id: d.name for d in gallery.disorders()}
    disorder_labels = [None if isinstance(d, float) or d is None else str(d) for d in meta["disorder"]]
    gene_labels = [None if isinstance(g, float) or g is None else str(g) for g in meta["gene"]]
    case_ids = meta["case_id"].astype(str).tolist()
    disorders = rank_labels(disorder_labels, case_ids, scores, disorder_counts, names, rule=rule)
    genes = rank_labels(gene_labels, case_ids, scores, gene_counts, rule=rule)

    note = "no calibration: the gallery needs at least 10 cases whose disorder has another patient"
    no_close_match = not disorders or disorders[0].score is None
    in_gallery = None
    if calibration is not None:
        neighbourhood = _neighbourhood(disorders, scores, disorder_labels)
        nearest = float(neighbourhood.nearest_diagnosed[0])  # -inf: no diagnosed case was searched
        searched_any = bool(np.isfinite(nearest))
        in_gallery = float(calibration.in_gallery_probability(nearest, disorders[0].label)) if searched_any else 0.0
        _attach_probabilities(disorders, calibration, neighbourhood, in_gallery)
        no_close_match = not searched_any or bool(calibration.no_close_match(nearest, disorders[0].label))
        note = (
            f"calibrated on {calibration.queries} gallery cases (leave-one-patient-out); expected calibration error "
            f"{calibration.expected_calibration_error:.3f}; 'no close match' when the nearest diagnosed case's similarity is below "
            f"{calibration.no_match_threshold:.4f} or it lies far beyond how close the first-ranked disorder's cases lie to "
            "each other; each disorder's probability includes the "
            f"probability that the query's disorder is among the gallery's ({in_gallery:.0%} here)"
            + (
                f" (fires on {calibration.no_match_fires_when_absent:.0%} of cases whose disorder is absent, "
                f"off for {calibration.no_match_off_when_present or 0:.0%} of cases whose disorder is present)"
                if calibration.no_match_fires_when_absent is not None
                else ""
            )
        )
    profile = _profile_evidence(gallery, considered, hand)
    if (
        findings is not None and not findings.empty()
    ) or profile is not None:  # the image's probabilities stay; the order follows all the evidence
        catalogue, findings = gallery.disorders(), findings or ClinicalFindings([], [], None)
        disorders = combine_ranking(disorders, catalogue, findings, default_model(), profile)
        genes = combine_gene_ranking(genes, disorders, catalogue, findings)
    similar = _similar_cases(meta, scores, top_k)
    profile_z = None if profile is None else profile.query_z
    return QueryResult(similar, disorders, genes, bool(no_close_match), note, len(hits), len(table), in_gallery, profile_z)
