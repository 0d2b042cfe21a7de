"""/queries: rank the gallery for an embedding (from this gallery's model) with filters; several
embeddings of one patient's films are combined into one query (`matcher.multi_image`)."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.deps import GalleryDep, Reader, RuntimeDep
from api.problems import Problem
from api.ranking import rank
from api.schemas import EmbeddingQuery, Ranking
from index.evidence import QueryEvidence
from index.filters import Filters
from matcher.multi_image import combined_embedding

router = APIRouter(prefix="/queries", tags=["analysis"])


@router.post("", response_model=Ranking)
async def query_embedding(_: Reader, runtime: RuntimeDep, gallery: GalleryDep, body: EmbeddingQuery) -> Ranking:
    vectors = [_checked(v, gallery.dim, i if len(body.vectors()) > 1 else None) for i, v in enumerate(body.vectors())]
    vector = combined_embedding(np.stack(vectors))
    filters = Filters.of(sex=body.sex, age_min_months=body.age_min_months, age_max_months=body.age_max_months, source=body.source)
    evidence = QueryEvidence.of(body.hpo, body.hpo_excluded, body.candidate_genes)
    return await run_in_threadpool(rank, gallery, vector, body.top, filters, runtime.settings.ranking_rule, evidence)


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
