"""The web page: `/` and its static files (the page talks to the API with the user's key)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

WEB = Path(str(resources.files("api") / "web"))

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def index() -> FileResponse:
    return FileResponse(WEB / "index.html", media_type="text/html")
