"""/disorders: the catalogue, with the number of cases of each; curators add disorders and edit their HPO annotations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

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


class PhenotypeEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    add: list[Annotated[str, Field(max_length=20)]] = Field(default_factory=list, max_length=500, description="HPO ids to add")
    remove: list[Annotated[str, Field(max_length=20)]] = Field(default_factory=list, max_length=500, description="HPO ids to remove")
    from_ontology: bool = Field(False, description="start from the ontology's annotations of the disorder's OMIM/ORPHA entry")


@router.patch("/{disorder_id}/phenotypes", response_model=DisorderOut)
async def edit_phenotypes(
    _: Curator, gallery: GalleryDep, disorder_id: Annotated[str, Path(max_length=80)], body: PhenotypeEdit
) -> DisorderOut:
    """Curators edit a disorder's HPO annotations; unknown or obsolete ids are refused with their replacement."""
    current = gallery.disorder(disorder_id)
    if current is None:
        raise Problem(404, "Disorder not found", f"{disorder_id!r} is not in the catalogue; GET /api/v1/disorders lists the ids.")
    try:
        edited = current.with_phenotypes(body.add, body.remove, body.from_ontology)
    except ValueError as exc:
        raise Problem(422, "Phenotypes not changed", str(exc)) from None
    await run_in_threadpool(gallery.add_disorders, [edited], True)
    return DisorderOut(**edited.model_dump(), cases=gallery.stats().by_disorder.get(disorder_id, 0))


@router.post("", response_model=DisorderOut, status_code=201)
async def add_disorder(_: Curator, gallery: GalleryDep, body: Disorder) -> DisorderOut:
    try:
        await run_in_threadpool(gallery.add_disorders, [body])
    except GalleryError as exc:
        raise Problem(422, "Disorder not added", str(exc)) from None
    return DisorderOut(**body.model_dump(), cases=0)
