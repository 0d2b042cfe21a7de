"""Errors as `application/problem+json` (RFC 9457) with messages a clinician can act on.

Every refusal the service makes goes through `Problem`; validation errors from FastAPI
are rewritten into the same shape, naming the field and what is expected. Nothing from
the request body (which may hold patient data) is echoed back.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from matcher.errors import Bone2GeneError

MEDIA_TYPE = "application/problem+json"


class ProblemDocument(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    reasons: list[str] | None = None


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, reasons: list[str] | None = None, headers: dict | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.reasons, self.headers = status, title, detail, reasons, headers


def problem_response(status: int, title: str, detail: str, reasons: list[str] | None = None, headers: dict | None = None) -> JSONResponse:
    body = ProblemDocument(title=title, status=status, detail=detail, reasons=reasons).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, exc.reasons, exc.headers)

    @app.exception_handler(Bone2GeneError)
    async def _refused(_: Request, exc: Bone2GeneError) -> JSONResponse:
        """Every library refusal, in one place: its class says the status and the title."""
        if exc.http_status == 503:
            return problem_response(503, exc.title, f"{exc}; please try again in a few seconds.", headers={"Retry-After": "5"})
        return problem_response(exc.http_status, exc.title, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = [f"{_field(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
        return problem_response(422, "Invalid request", "Some fields are missing or have the wrong type; see reasons.", reasons)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed", 401: "Not signed in", 403: "Not allowed"}
        return problem_response(
            exc.status_code, titles.get(exc.status_code, "Request refused"), str(exc.detail), headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # never leak internals
        return problem_response(500, "Internal error", "Something went wrong on our side; the request was not completed. Please try again.")
