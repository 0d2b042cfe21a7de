"""/gallery/stats, /cohort-map and /audit: the gallery as a whole."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from api.cohort_maps import position_on
from api.deps import Admin, GalleryDep, Reader, RuntimeDep, stored_analysis
from api.schemas import CohortMapOut, GalleryStatsOut, MapPoint

router = APIRouter(tags=["gallery"])


@router.get("/gallery/stats", response_model=GalleryStatsOut)
def stats(_: Reader, gallery: GalleryDep) -> GalleryStatsOut:
    s = gallery.stats()
    return GalleryStatsOut(**{k: getattr(s, k) for k in GalleryStatsOut.model_fields})


@router.get("/cohort-map", response_model=CohortMapOut)
async def cohort_map_points(
    _: Reader,
    runtime: RuntimeDep,
    analysis_id: Annotated[str | None, Query(max_length=64, description="also place this analysis on the same map")] = None,
) -> CohortMapOut:
    from index.explore import map_table

    stored = stored_analysis(runtime, analysis_id) if analysis_id else None
    current = await run_in_threadpool(runtime.maps.current)
    # placed on the very map returned, even if a refit lands meanwhile
    query_position = None if stored is None else await run_in_threadpool(position_on, current, stored.analysis.embedding)
    table = map_table(runtime.gallery, current)
    points = [
        MapPoint(
            case_id=r.case_id,
            x=round(float(r.x), 4),
            y=round(float(r.y), 4),
            disorder=r.disorder,
            disorder_name=r.disorder_name if isinstance(r.disorder_name, str) else None,
            sex=r.sex,
            age_months=float(r.age_months),
        )
        for r in table.itertuples()
    ]
    return CohortMapOut(
        key=current.key,
        generation=current.generation,
        fitted_generation=current.fitted_generation,
        placed_by_transform=current.placed_by_transform,
        model_fingerprint=current.model_fingerprint,
        points=points,
        query_position=query_position,
    )


@router.get("/audit")
def audit(_: Admin, gallery: GalleryDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict]:
    return gallery.audit_log(limit)
