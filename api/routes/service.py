"""/health, /me, /model: is the service up, who am I, which model answers."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Reader, RuntimeDep
from api.schemas import Health, Me, ModelInfo
from api.version import VERSION

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
def health() -> Health:
    return Health(status="ok", version=VERSION)


@router.get("/me", response_model=Me)
def me(who: Reader) -> Me:
    return Me(key_id=who.key_id, role=who.role, label=who.label)


@router.get("/model", response_model=ModelInfo)
def model_info(_: Reader, runtime: RuntimeDep) -> ModelInfo:
    card = runtime.card
    c = card.config
    note = "trained on synthetic radiographs only; not validated on patients" if card.provenance.get("trained_by") else ""
    return ModelInfo(
        fingerprint=card.fingerprint,
        backbone=c.backbone_name,
        input_size=c.input_size,
        embedding_dim=c.embedding_dim,
        sex_head_trained=c.sex_head_trained,
        embedding_trained=c.embedding_trained,
        training_disorders=sorted(c.labels),
        note=note,
    )
