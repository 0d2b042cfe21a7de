"""The service's FastAPI dependencies, in one place: the runtime, the caller and their role,
and the lookups every router shares (a kept analysis, a gallery case).

Tests replace any of them with `app.dependency_overrides[deps.caller] = ...`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi import Path as PathParam

from api.keys import KeyInfo, Role, role_allows
from api.problems import Problem
from api.recent import StoredAnalysis
from api.runtime import Runtime
from index.store import Gallery


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_gallery(runtime: RuntimeDep) -> Gallery:
    return runtime.gallery


GalleryDep = Annotated[Gallery, Depends(get_gallery)]


def _not_signed_in(detail: str) -> Problem:
    return Problem(401, "Not signed in", detail, headers={"WWW-Authenticate": "Bearer"})


def caller(
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header(description="Bearer b2g_...")] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> KeyInfo:
    """Who is calling, from `Authorization: Bearer <key>` or `X-API-Key`."""
    bearer = authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else None
    key = x_api_key or bearer
    if not key:
        raise _not_signed_in("This request needs an API key (header 'Authorization: Bearer <key>').")
    info = runtime.keys.verify(key)
    if info is None:
        raise _not_signed_in("The API key is not valid (mistyped, or revoked).")
    return info


def _require(role: Role, info: KeyInfo) -> KeyInfo:
    if not role_allows(info.role, role):
        raise Problem(403, "Not allowed", f"This needs the {role} role; your key has the {info.role} role.")
    return info


def require_reader(info: Annotated[KeyInfo, Depends(caller)]) -> KeyInfo:
    return _require("reader", info)


def require_curator(info: Annotated[KeyInfo, Depends(caller)]) -> KeyInfo:
    return _require("curator", info)


def require_admin(info: Annotated[KeyInfo, Depends(caller)]) -> KeyInfo:
    return _require("admin", info)


Reader = Annotated[KeyInfo, Depends(require_reader)]
Curator = Annotated[KeyInfo, Depends(require_curator)]
Admin = Annotated[KeyInfo, Depends(require_admin)]

AnalysisId = Annotated[str, PathParam(max_length=64)]
CaseId = Annotated[str, PathParam(max_length=100)]


def stored_analysis(runtime: Runtime, analysis_id: str) -> StoredAnalysis:
    stored = runtime.analysis(analysis_id)
    if stored is None:
        raise Problem(404, "Analysis not found", "This analysis is unknown or has expired; analyse the radiograph again.")
    return stored


def gallery_case(gallery: Gallery, case_id: str) -> dict:
    """One case's metadata, looked up by id in SQL."""
    row = gallery.case(case_id)
    if row is None:
        raise Problem(404, "Case not found", f"No case {case_id!r} in the gallery (it may have been removed).")
    return row
