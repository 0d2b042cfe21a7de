"""/queries: rank the gallery for an embedding (from this gallery's model) with filters; several
embeddings of one patient's films are combined into one query (`matcher.multi_image`)."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.deps import GalleryDep, Reader, RuntimeDep
from api.problems import Problem
from api.schemas import EmbeddingQuery, Ranking
from api.use_cases import rank_gallery, ranking_phenopacket
from index.evidence import ClinicalFindings
from index.filters import Filters
from matcher.multi_image import combined_embedding

router = APIRouter(prefix="/queries", tags=["analysis"])


@router.post("", response_model=Ranking)
async def query_embedding(_: Reader, runtime: RuntimeDep, gallery: GalleryDep, body: EmbeddingQuery) -> Ranking:
    vector, filters, findings = _parts(body, gallery.dim)
    return Ranking.of(await run_in_threadpool(rank_gallery, gallery, vector, body.top, filters, runtime.settings.ranking_rule, findings))


@router.post("/phenopacket")
async def query_as_phenopacket(_: Reader, runtime: RuntimeDep, gallery: GalleryDep, body: EmbeddingQuery) -> dict:
    """The same ranking as a GA4GH phenopacket (v2 JSON): each ranked disorder an IN_PROGRESS interpretation."""
    from google.protobuf.json_format import MessageToDict

    vector, filters, findings = _parts(body, gallery.dim)
    rule = runtime.settings.ranking_rule

    def ranked() -> dict:
        result = rank_gallery(gallery, vector, body.top, filters, rule, findings)
        return MessageToDict(ranking_phenopacket(gallery, result, "bone2gene-query", body.sex, None, findings, body.top))

    return await run_in_threadpool(ranked)


def _parts(body: EmbeddingQuery, dim: int) -> tuple[np.ndarray, Filters, ClinicalFindings]:
    """The combined query vector, the filters and the checked clinical findings (HPO terms, candidate genes) of a request."""
    vectors = [_checked(v, dim, i if len(body.vectors()) > 1 else None) for i, v in enumerate(body.vectors())]
    filters = Filters.of(sex=body.sex, age_min_months=body.age_min_months, age_max_months=body.age_max_months, source=body.source)
    return combined_embedding(np.stack(vectors)), filters, ClinicalFindings.of(body.hpo, body.hpo_excluded, body.candidate_genes)


def _checked(values: list[float], dim: int, position: int | None) -> np.ndarray:
    """One embedding of the request as float32, or a 422 that says which one is wrong and how."""
    which = "The query" if position is None else f"Embedding {position + 1}"
    vector = np.asarray(values, dtype=np.float64).astype(np.float32)  # components are within [-1, 1]
    if len(vector) != dim:
        raise Problem(422, "Wrong embedding size", f"This gallery's model gives {dim} numbers; {which.lower()} has {len(vector)}.")
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or not 0.99 < norm < 1.01:
        raise Problem(
            422, "Embedding not normalised", f"{which} is not unit length: send the unit-length embedding returned by this gallery's model."
        )
    return vector
