"""/phenotypes: HPO terms by name or id, for the web page's autocompletion (the bundled ontology)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from api.deps import Reader
from index import hpo

router = APIRouter(prefix="/phenotypes", tags=["phenotypes"])


class PhenotypeTerm(BaseModel):
    id: str
    name: str


def _found(search: str, limit: int) -> list[PhenotypeTerm]:
    text = search.strip()
    if text.upper().startswith("HP:") or text.isdigit():
        try:
            term = hpo.resolve_term(text)
        except hpo.PhenotypeError:
            return []
        return [PhenotypeTerm(id=term.id, name=term.name)]
    return [PhenotypeTerm(id=t.id, name=t.name) for t in hpo.search(text, limit)]


@router.get("", response_model=list[PhenotypeTerm])
async def search_phenotypes(
    _: Reader,
    search: Annotated[str, Query(min_length=2, max_length=100, description="part of a term's name, or an HPO id")],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[PhenotypeTerm]:
    return await run_in_threadpool(_found, search, limit)
