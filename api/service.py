"""The HTTP service: a versioned JSON API (`/api/v1`) and the web page (`/`), one FastAPI app.

Every endpoint but `/api/v1/health` needs an API key (`Authorization: Bearer b2g_...` or
`X-API-Key`); roles: reader (analyse, query, read), curator (add, relabel and remove cases,
add disorders), admin (audit log). Images are served by id (case id or analysis id),
never by path. Bad input is answered with a 4xx `application/problem+json`; the model
and gallery load once at start-up; heavy work runs in worker threads so the service keeps
answering while curators write.
"""


from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from fastapi import Depends, FastAPI, File, Form, Header, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from api import problems
from api.keys import KeyInfo, Role, role_allows
from api.problems import Problem, ProblemDocument
from api.runtime import Busy, Runtime, ServiceSettings, position_on
from api.schemas import (
    AnalysisResult,
    Case,
    CaseList,
    CohortMapOut,
    Deleted,
    DisorderOut,
    EmbeddingQuery,
    GalleryStatsOut,
    Health,
    Links,
    MapPoint,
    Me,
    ModelInfo,
    NewCaseFromAnalysis,
    Quality,
    Ranking,
    Relabel,
)
from index.catalogue import Disorder
from index.query import calibration_for, query
from index.store import Filters, GalleryError, NewCase
from matcher.errors import RadiographError
from matcher.io import read_radiograph

VERSION = "0.1.0"
WEB = Path(str(resources.files("api") / "web"))
ERRORS = {status: {"model": ProblemDocument, "content": {"application/problem+json": {}}} for status in (400, 401, 403, 404, 413, 422, 503)}


def create_app(settings: ServiceSettings) -> FastAPI:
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        runtime.gallery.save_deferred_index()  # the app stays usable: a test harness may start it again

    app = FastAPI(
        title="Bone2Gene matcher", version=VERSION, responses=ERRORS, lifespan=lifespan,
        description="Find the rare bone disease behind a child's hand radiograph: bone age, sex check and a ranking of "
        "disorders by their most similar confirmed cases. Decision support, not a diagnosis.",
    )  # fmt: skip
    app.state.runtime = runtime
    problems.install(app)

    # -- authentication -----------------------------------------------------------
    def caller(
        authorization: Annotated[str | None, Header(description="Bearer b2g_...")] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> KeyInfo:
        key = x_api_key or (authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else None)
        if not key:
            raise Problem(401, "Not signed in", "This request needs an API key (header 'Authorization: Bearer <key>').",
                          headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        info = runtime.keys.verify(key)
        if info is None:
            raise Problem(401, "Not signed in", "The API key is not valid (mistyped, or revoked).", headers={"WWW-Authenticate": "Bearer"})
        return info

    def needs(role: Role):  # noqa: ANN202 - a FastAPI dependency
        def check(info: Annotated[KeyInfo, Depends(caller)]) -> KeyInfo:
            if not role_allows(info.role, role):
                raise Problem(403, "Not allowed", f"This needs the {role} role; your key has the {info.role} role.")
            return info

        return check

    Reader = Annotated[KeyInfo, Depends(needs("reader"))]
    Curator = Annotated[KeyInfo, Depends(needs("curator"))]
    Admin = Annotated[KeyInfo, Depends(needs("admin"))]
    gallery = runtime.gallery

    # -- routes ---------------------------------------------------------------------
    @app.get("/api/v1/health", response_model=Health, tags=["service"])
    def health() -> Health:
        return Health(status="ok", version=VERSION)

    @app.get("/api/v1/me", response_model=Me, tags=["service"])
    def me(who: Reader) -> Me:
        return Me(key_id=who.key_id, role=who.role, label=who.label)

    @app.get("/api/v1/model", response_model=ModelInfo, tags=["service"])
    def model_info(_: Reader) -> ModelInfo:
        c = runtime.card.config
        note = "trained on synthetic radiographs only; not validated on patients" if runtime.card.provenance.get("trained_by") else ""
        return ModelInfo(fingerprint=runtime.card.fingerprint, backbone=c.backbone_name, input_size=c.input_size, embedding_dim=c.embedding_dim,
                         sex_head_trained=c.sex_head_trained, embedding_trained=c.embedding_trained, training_disorders=sorted(c.labels), note=note)  # fmt: skip

    @app.post("/api/v1/analyses", response_model=AnalysisResult, tags=["analysis"])
    async def analyse(
        _: Reader,
        image: Annotated[UploadFile, File(description="Hand radiograph: DICOM, PNG, JPEG or TIFF")],
        sex: Annotated[Literal["M", "F"] | None, Form(description="M or F; if omitted, from the DICOM header or predicted")] = None,
        age_months: Annotated[float | None, Form(ge=0, le=1200, description="chronological age in months")] = None,
        top: Annotated[int, Form(ge=1, le=100, description="how many similar cases to return")] = 10,
        attention: Annotated[bool, Form(description="also compute the bone-age attention overlay")] = True,
    ) -> AnalysisResult:
        data = await image.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise Problem(413, "File too large", f"The upload is over {settings.max_upload_bytes // 2**20} MB; send one radiograph, not a series.")
        if not data:
            raise Problem(422, "Empty file", "The uploaded file is empty; choose the radiograph again.")
        try:
            radiograph = await run_in_threadpool(read_radiograph, data, runtime.limits)
        except RadiographError as exc:
            raise Problem(422, "Image not readable", str(exc)) from None
        try:
            analysis_id, stored = await run_in_threadpool(runtime.analyze, radiograph, sex, age_months, attention)
        except Busy as exc:
            raise Problem(503, "Busy", f"{exc}; please try again in a few seconds.", headers={"Retry-After": "5"}) from None
        result = stored.analysis
        if not result.accepted or result.embedding is None:
            raise Problem(422, "Radiograph not accepted", "The quality check refused this image; see reasons.", reasons=result.reasons)
        ranking = await run_in_threadpool(_rank, result.embedding, top, None)
        position = await run_in_threadpool(runtime.map_position, result.embedding)
        return AnalysisResult(
            analysis_id=analysis_id, accepted=True, sex=result.sex or "", sex_source=result.sex_source or "", age_months=result.age_months,
            bone_age_months=round(result.bone_age_months or 0.0, 2),
            bone_age_deviation_months=None if result.bone_age_deviation_months is None else round(result.bone_age_deviation_months, 2),
            bone_age_z=result.bone_age_z, bone_age_z_note=result.bone_age_z_note, male_probability=round(result.male_probability or 0.0, 4),
            sex_warning=result.sex_warning,
            quality=Quality(codes=result.gate.codes if result.gate else [], measurements=result.gate.measurements if result.gate else {},
                            warnings=result.gate.warnings if result.gate else []),
            ranking=ranking,
            links=Links(thumbnail=f"/api/v1/analyses/{analysis_id}/thumbnail.png",
                        overlay=f"/api/v1/analyses/{analysis_id}/overlay.png" if stored.overlay_png else None),
            map_position=position, timings_ms={k: round(v, 1) for k, v in result.timings_ms.items()},
        )  # fmt: skip

    def _rank(embedding: np.ndarray, top: int, filters: Filters | None) -> Ranking:
        result = query(gallery, embedding, top_k=top, filters=filters, calibration=calibration_for(gallery))
        return Ranking.model_validate(
            {**result.to_json(), "disorders": [d.to_json() for d in result.disorders], "genes": [g.to_json() for g in result.genes]}
        )

    @app.post("/api/v1/queries", response_model=Ranking, tags=["analysis"])
    async def query_embedding(_: Reader, body: EmbeddingQuery) -> Ranking:
        vector = np.asarray(body.embedding, dtype=np.float64).astype(np.float32)  # components are within [-1, 1]
        if len(vector) != gallery.dim:
            raise Problem(422, "Wrong embedding size", f"This gallery's model gives {gallery.dim} numbers; the query has {len(vector)}.")
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or not 0.99 < norm < 1.01:
            raise Problem(422, "Embedding not normalised", "Send the unit-length embedding returned by this gallery's model.")
        filters = Filters(body.sex, body.age_min_months, body.age_max_months, body.source)
        return await run_in_threadpool(_rank, vector, body.top, filters)

    def _stored(analysis_id: str):  # noqa: ANN202
        stored = runtime.analysis(analysis_id)
        if stored is None:
            raise Problem(404, "Analysis not found", "This analysis is unknown or has expired; analyse the radiograph again.")
        return stored

    @app.get("/api/v1/analyses/{analysis_id}/thumbnail.png", response_class=Response, tags=["images"])
    def analysis_thumbnail(_: Reader, analysis_id: Annotated[str, PathParam(max_length=64)]) -> Response:
        return Response(_stored(analysis_id).thumbnail_png, media_type="image/png")

    @app.get("/api/v1/analyses/{analysis_id}/overlay.png", response_class=Response, tags=["images"])
    def analysis_overlay(_: Reader, analysis_id: Annotated[str, PathParam(max_length=64)]) -> Response:
        stored = _stored(analysis_id)
        if stored.overlay_png is None:
            raise Problem(404, "No overlay", "This analysis was run without the attention overlay.")
        return Response(stored.overlay_png, media_type="image/png")

    def _case_row(case_id: str) -> dict:
        table = gallery.cases()
        match = table[table["case_id"] == case_id]
        if match.empty:
            raise Problem(404, "Case not found", f"No case {case_id!r} in the gallery (it may have been removed).")
        return match.iloc[0].to_dict()

    def _case(row: dict) -> Case:
        clean = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        return Case(**{k: clean.get(k) for k in Case.model_fields} | {"source": clean.get("source") or ""})

    @app.get("/api/v1/cases", response_model=CaseList, tags=["cases"])
    def list_cases(
        _: Reader,
        disorder: Annotated[str | None, Query(max_length=80)] = None,
        sex: Annotated[Literal["M", "F"] | None, Query()] = None,
        age_min_months: Annotated[float | None, Query(ge=0, le=1200)] = None,
        age_max_months: Annotated[float | None, Query(ge=0, le=1200)] = None,
        source: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> CaseList:
        table = gallery.cases(Filters(sex, age_min_months, age_max_months, source, (disorder,) if disorder else ()))
        page = table.iloc[offset : offset + limit]
        return CaseList(total=len(table), cases=[_case(r) for r in page.to_dict("records")])

    @app.get("/api/v1/cases/{case_id}", response_model=Case, tags=["cases"])
    def get_case(_: Reader, case_id: Annotated[str, PathParam(max_length=100)]) -> Case:
        return _case(_case_row(case_id))

    @app.get("/api/v1/cases/{case_id}/thumbnail.png", response_class=Response, tags=["images"])
    def case_thumbnail(_: Reader, case_id: Annotated[str, PathParam(max_length=100)]) -> Response:
        digest = _case_row(case_id).get("image_sha256")
        if not isinstance(digest, str):
            raise Problem(404, "No image", "This case was added without its image.")
        return Response(runtime.case_thumbnail(digest), media_type="image/png")

    @app.post("/api/v1/cases", response_model=Case, status_code=201, tags=["cases"])
    async def add_case(who: Curator, body: NewCaseFromAnalysis) -> Case:
        stored = _stored(body.analysis_id)
        result = stored.analysis
        new = NewCase(result.embedding, result.sex or "", result.age_months if result.age_months is not None else -1.0, body.disorder,
                      body.gene or None, body.patient_id or None, None, result.bone_age_months, body.source, stored.pixels)  # fmt: skip
        if result.age_months is None:
            raise Problem(422, "Age missing", "The analysis had no chronological age; analyse again with age_months to add the case.")
        try:
            (case_id,) = await run_in_threadpool(gallery.add_cases, [new], runtime.card.fingerprint, f"key:{who.key_id}")
        except GalleryError as exc:
            raise Problem(422, "Case not added", str(exc)) from None
        return _case(_case_row(case_id))

    @app.patch("/api/v1/cases/{case_id}", response_model=Case, tags=["cases"])
    async def relabel_case(who: Curator, case_id: Annotated[str, PathParam(max_length=100)], body: Relabel) -> Case:
        _case_row(case_id)
        try:
            await run_in_threadpool(gallery.relabel, case_id, body.disorder, body.gene, f"key:{who.key_id}")
        except GalleryError as exc:
            raise Problem(422, "Not relabelled", str(exc)) from None
        return _case(_case_row(case_id))

    @app.delete("/api/v1/cases/{case_id}", response_model=Deleted, tags=["cases"])
    async def delete_case(who: Curator, case_id: Annotated[str, PathParam(max_length=100)]) -> Deleted:
        _case_row(case_id)
        try:
            await run_in_threadpool(gallery.remove_case, case_id, f"key:{who.key_id}")
        except GalleryError as exc:
            raise Problem(404, "Case not found", str(exc)) from None
        return Deleted(deleted=case_id)

    @app.get("/api/v1/disorders", response_model=list[DisorderOut], tags=["disorders"])
    def list_disorders(_: Reader) -> list[DisorderOut]:
        counts = gallery.stats().by_disorder
        return [DisorderOut(**d.model_dump(), cases=counts.get(d.id, 0)) for d in gallery.disorders()]

    @app.post("/api/v1/disorders", response_model=DisorderOut, status_code=201, tags=["disorders"])
    async def add_disorder(_: Curator, body: Disorder) -> DisorderOut:
        try:
            await run_in_threadpool(gallery.add_disorders, [body])
        except GalleryError as exc:
            raise Problem(422, "Disorder not added", str(exc)) from None
        return DisorderOut(**body.model_dump(), cases=0)

    @app.get("/api/v1/gallery/stats", response_model=GalleryStatsOut, tags=["gallery"])
    def stats(_: Reader) -> GalleryStatsOut:
        s = gallery.stats()
        return GalleryStatsOut(**{k: getattr(s, k) for k in GalleryStatsOut.model_fields})

    @app.get("/api/v1/cohort-map", response_model=CohortMapOut, tags=["gallery"])
    async def cohort_map_points(
        _: Reader,
        analysis_id: Annotated[str | None, Query(max_length=64, description="also place this analysis on the same map")] = None,
    ) -> CohortMapOut:
        from index.explore import MapError, map_table

        stored = _stored(analysis_id) if analysis_id else None
        try:
            current = await run_in_threadpool(runtime.cohort_map)
        except MapError as exc:
            raise Problem(422, "No map yet", str(exc)) from None
        # placed on the very map returned, even if a refit lands meanwhile
        query_position = None if stored is None else await run_in_threadpool(position_on, current, stored.analysis.embedding)
        table = map_table(gallery, current)
        points = [MapPoint(case_id=r.case_id, x=round(float(r.x), 4), y=round(float(r.y), 4), disorder=r.disorder,
                           disorder_name=r.disorder_name if isinstance(r.disorder_name, str) else None, sex=r.sex,
                           age_months=float(r.age_months)) for r in table.itertuples()]  # fmt: skip
        return CohortMapOut(key=current.key, generation=current.generation, fitted_generation=current.fitted_generation,
                            placed_by_transform=current.placed_by_transform, model_fingerprint=current.model_fingerprint, points=points,
                            query_position=query_position)  # fmt: skip

    @app.get("/api/v1/analyses/{analysis_id}/map-position", response_model=list[float], tags=["gallery"])
    async def analysis_map_position(_: Reader, analysis_id: Annotated[str, PathParam(max_length=64)]) -> list[float]:
        from index.explore import MapError

        stored = _stored(analysis_id)
        try:
            current = await run_in_threadpool(runtime.cohort_map)
        except MapError as exc:
            raise Problem(422, "No map yet", str(exc)) from None
        return await run_in_threadpool(position_on, current, stored.analysis.embedding)

    @app.get("/api/v1/audit", tags=["gallery"])
    def audit(_: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict]:
        return gallery.audit_log(limit)

    # -- the web page ---------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=WEB), name="static")
    return app

