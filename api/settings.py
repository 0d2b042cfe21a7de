"""The service's settings: from `bone2gene serve` flags, else `BONE2GENE_*` environment variables.

    BONE2GENE_GALLERY=/data/gallery BONE2GENE_INFERENCE_SLOTS=2 bone2gene serve

Every field below has a variable of its name in capitals with the prefix (`BONE2GENE_MODEL`,
`BONE2GENE_MAX_UPLOAD_BYTES`, ...); a flag given to `serve` wins over the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from matcher.checkpoint import BUNDLED_MODEL_DIR
from matcher.rank import DEFAULT_RULE, RankingRule


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BONE2GENE_", extra="forbid", protected_namespaces=())

    gallery: Path = Field(description="gallery directory (bone2gene gallery init)")
    model: Path = Field(BUNDLED_MODEL_DIR, description="model directory; default: the bundled model")
    keys: Path | None = Field(None, description="API key file; default: <gallery>/keys.sqlite")
    max_upload_bytes: int = Field(40 * 2**20, gt=0, description="largest accepted upload")
    max_pixels: int = Field(40_000_000, gt=0, description="largest accepted image (width x height)")
    inference_slots: int = Field(1, ge=1, description="analyses computed at the same time (one model copy each)")
    queue_limit: int = Field(16, ge=0, description="analyses that may wait for a slot; more are told to retry")
    queue_timeout_s: float = Field(60.0, gt=0, description="longest wait for a slot before a retry answer")
    # recent analyses (overlays, add-to-gallery) are kept in memory, the oldest dropped first
    # when either bound is reached: a 16-bit 2,500 x 2,000 radiograph alone is 10 MB
    analyses_kept: int = Field(256, ge=1, description="recent analyses kept for overlays and add-to-gallery")
    analyses_memory_bytes: int = Field(1024 * 2**20, ge=2**20, description="memory bound of the kept analyses")
    ba_reference: Path | None = Field(None, description="bone-age SD table for z-scores; default: the bundled one")
    ranking_rule: RankingRule = Field(
        DEFAULT_RULE, description="how disorders are ranked: density (class-balanced) or nearest (GestaltMatcher's nearest case)"
    )

    @property
    def keys_path(self) -> Path:
        return self.keys or self.gallery / "keys.sqlite"
