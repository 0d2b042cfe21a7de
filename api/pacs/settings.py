"""The DICOM node's settings: from `bone2gene pacs` flags, else `BONE2GENE_PACS_*` environment variables.

    BONE2GENE_PACS_GALLERY=/data/gallery BONE2GENE_PACS_STATE=/data/node \\
    BONE2GENE_PACS_ALLOWED_CALLING_AES='["ORTHANC"]' bone2gene pacs listen

Lists are JSON in the environment. Secrets (the DICOMweb password or token) are `SecretStr`:
they print as `**********`, so no log line, error or status line can show them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from matcher.checkpoint import BUNDLED_MODEL_DIR
from matcher.rank import DEFAULT_RULE, RankingRule

AE_TITLE = r"^[ -~]{1,16}$"  # DICOM AE: up to 16 printable ASCII characters
DEFAULT_DESCRIPTION = r"(?i)hand|wrist|bone.?age|carpus|handgelenk|main|mano"


class FilmFilter(BaseSettings):
    """Which objects are hand films: what `pacs watch` asks the PACS for and what both routes keep."""

    model_config = SettingsConfigDict(env_prefix="BONE2GENE_PACS_FILTER_", extra="forbid")

    modalities: list[str] = Field(["CR", "DX"], description="modalities analysed (projection radiography)")
    body_parts: list[str] = Field(["HAND", "WRIST"], description="Body Part Examined values taken as a hand film")
    description: str = Field(
        DEFAULT_DESCRIPTION, description="regex on the series/study description, used where Body Part Examined is empty"
    )
    studies: list[str] = Field([], description="only these Study Instance UIDs (empty: any study)")

    @field_validator("description")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"the description filter is not a valid regular expression: {exc}") from exc
        return value

    @field_validator("modalities", "body_parts")
    @classmethod
    def _upper(cls, values: list[str]) -> list[str]:
        return [v.strip().upper() for v in values if v.strip()]


class NodeSettings(BaseSettings):
    """One node: where it analyses (gallery, model), how it is reached, where answers go."""

    model_config = SettingsConfigDict(env_prefix="BONE2GENE_PACS_", extra="forbid", protected_namespaces=())

    gallery: Path = Field(description="gallery directory the films are matched against")
    state: Path = Field(description="the node's own folder: outbox of answers not yet delivered, ledger of films seen")
    model: Path = Field(BUNDLED_MODEL_DIR, description="model directory; default: the bundled model")
    ae_title: str = Field("BONE2GENE", pattern=AE_TITLE, description="this node's AE title")
    host: str = Field("127.0.0.1", description="address the Storage SCP listens on (0.0.0.0: every interface)")
    port: int = Field(11112, ge=1, le=65535, description="port the Storage SCP listens on")
    allowed_calling_aes: list[str] = Field([], description="calling AE titles allowed to send films; everyone else is refused")
    destination: Literal["dicom", "dicomweb"] = Field("dicom", description="answers go back by C-STORE (dicom) or STOW-RS")
    peer_ae_title: str | None = Field(None, pattern=AE_TITLE, description="AE title answers are C-STOREd to")
    peer_host: str | None = Field(None, description="host answers are C-STOREd to")
    peer_port: int | None = Field(None, ge=1, le=65535, description="port answers are C-STOREd to")
    dicomweb_url: str | None = Field(None, description="DICOMweb root of the PACS (QIDO/WADO for watch, STOW for answers)")
    dicomweb_username: str | None = Field(None, description="HTTP basic user of the DICOMweb server")
    dicomweb_password: SecretStr | None = Field(None, description="HTTP basic password (never logged)")
    dicomweb_token: SecretStr | None = Field(None, description="bearer token of the DICOMweb server (never logged)")
    tls_certificate: Path | None = Field(None, description="PEM certificate of this node: DICOM TLS on both the SCP and the SCU")
    tls_key: Path | None = Field(None, description="PEM private key of the certificate")
    tls_ca: Path | None = Field(None, description="PEM bundle of CAs whose peers are trusted (and required on the SCP)")
    poll_interval_s: float = Field(30.0, gt=0, description="how often `pacs watch` asks the PACS for new films")
    retry_first_s: float = Field(5.0, gt=0, description="first wait before an undelivered answer is sent again")
    retry_max_s: float = Field(900.0, gt=0, description="longest wait between attempts (the wait doubles up to this)")
    film_filter: FilmFilter = Field(default_factory=FilmFilter, description="which objects are hand films")
    top: int = Field(5, ge=1, le=20, description="disorders reported")
    ranking_rule: RankingRule = Field(DEFAULT_RULE, description="density or nearest")

    @model_validator(mode="after")
    def _complete(self) -> NodeSettings:
        peer = (self.peer_ae_title, self.peer_host, self.peer_port)
        if self.destination == "dicom" and None in peer:
            raise ValueError("answers go back by C-STORE: give the peer's AE title, host and port (--peer AE@HOST:PORT)")
        if self.destination == "dicomweb" and not self.dicomweb_url:
            raise ValueError("answers go back by STOW-RS: give the DICOMweb URL (--dicomweb-url)")
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise ValueError("DICOM TLS needs both the certificate and its key")
        if self.dicomweb_token is not None and self.dicomweb_password is not None:
            raise ValueError("give a DICOMweb bearer token or a user and password, not both")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_certificate is not None
