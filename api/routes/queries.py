"""/queries: rank the gallery for an embedding (from this gallery's model) with filters."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.deps import GalleryDep, Reader, RuntimeDep
from api.problems import Problem
from api.ranking import rank
from api.schemas import EmbeddingQuery, Ranking
from index.filters import Filters

router = APIRouter(prefix="/queries", tags=["analysis"])


@router.post("", response_model=Ranking)
async def query_embedding(_: Reader, runtime: RuntimeDep, gallery: GalleryDep, body: EmbeddingQuery) -> Ranking:
    vector = np.asarray(body.embedding, dtype=np.float64).astype(np.float32)  # components are within [-1, 1]
    if len(vector) != gallery.dim:
        raise Problem(422, "Wrong embedding size", f"This gallery's model gives {gallery.dim} numbers; the query has {len(vector)}.")
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or not 0.99 < norm < 1.01:
        raise Problem(422, "Embedding not normalised", "Send the unit-length embedding returned by this gallery's model.")
    filters = Filters.of(sex=body.sex, age_min_months=body.age_min_months, age_max_months=body.age_max_months, source=body.source)
    return await run_in_threadpool(rank, gallery, vector, body.top, filters, runtime.settings.ranking_rule)
