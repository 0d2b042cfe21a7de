"""/cases: list, read, add (from a kept analysis), relabel and remove confirmed cases."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.deps import CaseId, Curator, GalleryDep, Reader, RuntimeDep, gallery_case, stored_analysis
from api.problems import Problem
from api.schemas import Case, CaseList, Deleted, NewCaseFromAnalysis, Relabel
from index.filters import Filters
from index.hpo import split_terms
from index.store import GalleryError, NewCase

router = APIRouter(prefix="/cases")


def _case(row: dict) -> Case:
    clean = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
    terms = {column: split_terms(clean.get(column)) for column in ("hpo", "hpo_excluded")}
    return Case(**{k: clean.get(k) for k in Case.model_fields} | {"source": clean.get("source") or ""} | terms)


@router.get("", response_model=CaseList, tags=["cases"])
def list_cases(
    _: Reader,
    gallery: GalleryDep,
    disorder: Annotated[str | None, Query(max_length=80)] = None,
    sex: Annotated[Literal["M", "F"] | None, Query()] = None,
    age_min_months: Annotated[float | None, Query(ge=0, le=1200)] = None,
    age_max_months: Annotated[float | None, Query(ge=0, le=1200)] = None,
    source: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CaseList:
    filters = Filters.of(
        sex=sex, age_min_months=age_min_months, age_max_months=age_max_months, source=source, disorders=(disorder,) if disorder else ()
    )
    table = gallery.cases(filters)
    page = table.iloc[offset : offset + limit]
    return CaseList(total=len(table), cases=[_case(r) for r in page.to_dict("records")])


@router.get("/{case_id}", response_model=Case, tags=["cases"])
def get_case(_: Reader, gallery: GalleryDep, case_id: CaseId) -> Case:
    return _case(gallery_case(gallery, case_id))


@router.get("/{case_id}/phenopacket", tags=["cases"])
def case_phenopacket(_: Reader, gallery: GalleryDep, case_id: CaseId) -> dict:
    """The case as a GA4GH phenopacket (v2 JSON): sex, age, HPO terms, diagnosis and gene (no image, no pixels)."""
    from google.protobuf.json_format import MessageToDict

    from index.phenopackets_io import case_phenopacket as packet_of

    case = gallery_case(gallery, case_id)
    disorder = gallery.disorder(case.get("disorder"))
    return MessageToDict(packet_of(case, disorder))


@router.get("/{case_id}/thumbnail.png", response_class=Response, tags=["images"])
def case_thumbnail(_: Reader, runtime: RuntimeDep, case_id: CaseId) -> Response:
    digest = gallery_case(runtime.gallery, case_id).get("image_sha256")
    if not isinstance(digest, str):
        raise Problem(404, "No image", "This case was added without its image.")
    return Response(runtime.case_thumbnail(digest), media_type="image/png")


@router.post("", response_model=Case, status_code=201, tags=["cases"])
async def add_case(who: Curator, runtime: RuntimeDep, body: NewCaseFromAnalysis) -> Case:
    stored = stored_analysis(runtime, body.analysis_id)
    result = stored.analysis
    if result.age_months is None:
        raise Problem(422, "Age missing", "The analysis had no chronological age; analyse again with age_months to add the case.")
    new = NewCase(
        result.embedding,
        result.sex or "",
        result.age_months,
        body.disorder,
        body.gene or None,
        body.patient_id or None,
        None,
        result.bone_age_months,
        body.source,
        stored.pixels,
        body.hpo,
        body.hpo_excluded,
        None if result.hand is None else result.hand.lengths_px,
    )
    try:
        (case_id,) = await run_in_threadpool(runtime.gallery.add_cases, [new], runtime.card.fingerprint, f"key:{who.key_id}")
    except GalleryError as exc:
        raise Problem(422, "Case not added", str(exc)) from None
    return _case(gallery_case(runtime.gallery, case_id))


@router.patch("/{case_id}", response_model=Case, tags=["cases"])
async def relabel_case(who: Curator, gallery: GalleryDep, case_id: CaseId, body: Relabel) -> Case:
    gallery_case(gallery, case_id)
    try:
        await run_in_threadpool(gallery.relabel, case_id, body.disorder, body.gene, f"key:{who.key_id}")
    except GalleryError as exc:
        raise Problem(422, "Not relabelled", str(exc)) from None
    return _case(gallery_case(gallery, case_id))


@router.delete("/{case_id}", response_model=Deleted, tags=["cases"])
async def delete_case(who: Curator, gallery: GalleryDep, case_id: CaseId) -> Deleted:
    gallery_case(gallery, case_id)
    try:
        await run_in_threadpool(gallery.remove_case, case_id, f"key:{who.key_id}")
    except GalleryError as exc:
        raise Problem(404, "Case not found", str(exc)) from None
    return Deleted(deleted=case_id)
