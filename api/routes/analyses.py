"""/analyses: upload a radiograph, get bone age, sex and the ranking; its pictures by id."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.cohort_maps import position_on
from api.deps import AnalysisId, Reader, RuntimeDep, stored_analysis
from api.problems import Problem
from api.recent import StoredAnalysis
from api.schemas import AnalysisResult, Links, Quality, Ranking
from api.use_cases import hand_profile, rank_gallery
from index.evidence import ClinicalFindings
from index.gene_lists import parse_gene_list
from index.hpo import split_terms
from matcher.io import read_radiograph

router = APIRouter(prefix="/analyses")


def _result(analysis_id: str, stored: StoredAnalysis, ranking: Ranking, position: list[float] | None) -> AnalysisResult:
    result = stored.analysis
    gate = result.gate
    deviation = result.bone_age_deviation_months
    return AnalysisResult(
        analysis_id=analysis_id,
        accepted=True,
        sex=result.sex or "",
        sex_source=result.sex_source or "",
        age_months=result.age_months,
        bone_age_months=round(result.bone_age_months or 0.0, 2),
        bone_age_deviation_months=None if deviation is None else round(deviation, 2),
        bone_age_z=result.bone_age_z,
        bone_age_z_note=result.bone_age_z_note,
        male_probability=round(result.male_probability or 0.0, 4),
        sex_warning=result.sex_warning,
        quality=Quality(codes=gate.codes, measurements=gate.measurements, warnings=gate.warnings)
        if gate
        else Quality(codes=[], measurements={}),
        ranking=ranking,
        links=Links(
            thumbnail=f"/api/v1/analyses/{analysis_id}/thumbnail.png",
            overlay=f"/api/v1/analyses/{analysis_id}/overlay.png" if stored.overlay_wanted else None,
        ),
        map_position=position,
        image_size=[int(stored.pixels.shape[1]), int(stored.pixels.shape[0])],
        **(result.hand.to_json() if result.hand is not None else {}),
        timings_ms={k: round(v, 1) for k, v in result.timings_ms.items()},
    )


@router.post("", response_model=AnalysisResult, tags=["analysis"])
async def analyse(
    _: Reader,
    runtime: RuntimeDep,
    image: Annotated[UploadFile, File(description="Hand radiograph: DICOM, PNG, JPEG or TIFF")],
    sex: Annotated[Literal["M", "F"] | None, Form(description="M or F; if omitted, from the DICOM header or predicted")] = None,
    age_months: Annotated[float | None, Form(ge=0, le=1200, description="chronological age in months")] = None,
    top: Annotated[int, Form(ge=1, le=100, description="how many similar cases to return")] = 10,
    attention: Annotated[bool, Form(description="offer the bone-age attention overlay (drawn when first fetched)")] = True,
    hpo: Annotated[str, Form(max_length=4000, description="HPO ids seen in the patient, comma-separated")] = "",
    hpo_excluded: Annotated[str, Form(max_length=4000, description="HPO ids looked for and absent, comma-separated")] = "",
    candidate_genes: Annotated[
        str | None, Form(max_length=200_000, description="an exome's candidate genes (one per line or comma-separated)")
    ] = None,
) -> AnalysisResult:
    findings = ClinicalFindings.of(
        split_terms(hpo), split_terms(hpo_excluded), None if candidate_genes is None else parse_gene_list(candidate_genes)
    )
    limit = runtime.settings.max_upload_bytes
    data = await image.read(limit + 1)
    if len(data) > limit:
        raise Problem(413, "File too large", f"The upload is over {limit // 2**20} MB; send one radiograph, not a series.")
    if not data:
        raise Problem(422, "Empty file", "The uploaded file is empty; choose the radiograph again.")
    radiograph = await run_in_threadpool(read_radiograph, data, runtime.limits)
    analysis_id, stored = await run_in_threadpool(runtime.analyze, radiograph, sex, age_months, attention)
    result = stored.analysis
    if not result.accepted or result.embedding is None:
        raise Problem(422, "Radiograph not accepted", "The quality check refused this image; see reasons.", reasons=result.reasons)
    hand = [p for p in [hand_profile(result)] if p is not None]
    rule = runtime.settings.ranking_rule
    ranked = await run_in_threadpool(rank_gallery, runtime.gallery, result.embedding, top, None, rule, findings, hand)
    ranking = Ranking.of(ranked)
    return _result(analysis_id, stored, ranking, runtime.maps.position(result.embedding))


@router.get("/{analysis_id}/thumbnail.png", response_class=Response, tags=["images"])
def analysis_thumbnail(_: Reader, runtime: RuntimeDep, analysis_id: AnalysisId) -> Response:
    return Response(stored_analysis(runtime, analysis_id).thumbnail_png, media_type="image/png")


@router.get("/{analysis_id}/overlay.png", response_class=Response, tags=["images"])
async def analysis_overlay(_: Reader, runtime: RuntimeDep, analysis_id: AnalysisId) -> Response:
    stored = stored_analysis(runtime, analysis_id)
    if not stored.overlay_wanted:
        raise Problem(404, "No overlay", "This analysis was run without the attention overlay.")
    return Response(await run_in_threadpool(runtime.overlay, analysis_id, stored), media_type="image/png")


@router.get("/{analysis_id}/map-position", response_model=list[float], tags=["gallery"])
async def analysis_map_position(_: Reader, runtime: RuntimeDep, analysis_id: AnalysisId) -> list[float]:
    stored = stored_analysis(runtime, analysis_id)
    current = await run_in_threadpool(runtime.maps.current)
    return await run_in_threadpool(position_on, current, stored.analysis.embedding)
