"""/disorders: the catalogue, with the number of cases of each; curators add disorders."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.deps import Curator, GalleryDep, Reader
from api.problems import Problem
from api.schemas import DisorderOut
from index.catalogue import Disorder
from index.store import GalleryError

router = APIRouter(prefix="/disorders", tags=["disorders"])


@router.get("", response_model=list[DisorderOut])
def list_disorders(_: Reader, gallery: GalleryDep) -> list[DisorderOut]:
    counts = gallery.stats().by_disorder
    return [DisorderOut(**d.model_dump(), cases=counts.get(d.id, 0)) for d in gallery.disorders()]


@router.post("", response_model=DisorderOut, status_code=201)
async def add_disorder(_: Curator, gallery: GalleryDep, body: Disorder) -> DisorderOut:
    try:
        await run_in_threadpool(gallery.add_disorders, [body])
    except GalleryError as exc:
        raise Problem(422, "Disorder not added", str(exc)) from None
    return DisorderOut(**body.model_dump(), cases=0)
