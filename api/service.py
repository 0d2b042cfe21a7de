"""The HTTP service: a versioned JSON API (`/api/v1`) and the web page (`/`), one FastAPI app.

Every endpoint but `/api/v1/health` needs an API key (`Authorization: Bearer b2g_...` or
`X-API-Key`); roles: reader (analyse, query, read), curator (add, relabel and remove cases,
add disorders), admin (audit log). Images are served by id (case id or analysis id),
never by path. Bad input is answered with a 4xx `application/problem+json` (`api.problems`);
the model and gallery load once at start-up (`api.runtime`); heavy work runs in worker
threads so the service keeps answering while curators write. One router per resource
(`api.routes`), the dependencies they share in `api.deps`, settings in `api.settings`.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api import problems
from api.problems import ProblemDocument
from api.routes import analyses, cases, disorders, gallery, phenotypes, queries, service, web
from api.runtime import Runtime
from api.settings import ServiceSettings
from api.version import VERSION

ERRORS = {status: {"model": ProblemDocument, "content": {"application/problem+json": {}}} for status in (400, 401, 403, 404, 413, 422, 503)}
API_ROUTERS = (service.router, analyses.router, queries.router, cases.router, disorders.router, gallery.router, phenotypes.router)


def create_app(settings: ServiceSettings) -> FastAPI:
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        runtime.gallery.save_deferred_index()  # the app stays usable: a test harness may start it again

    app = FastAPI(
        title="Bone2Gene matcher",
        version=VERSION,
        responses=ERRORS,
        lifespan=lifespan,
        description="Find the rare bone disease behind a child's hand radiograph: bone age, sex check and a ranking of "
        "disorders by their most similar confirmed cases. Decision support, not a diagnosis.",
    )
    app.state.runtime = runtime
    problems.install(app)
    for router in API_ROUTERS:
        app.include_router(router, prefix="/api/v1")
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.WEB), name="static")
    return app
