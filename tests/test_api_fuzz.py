"""Schemathesis against the app's own OpenAPI document: every operation, generated requests
with a valid admin key (so requests get past authentication and reach the handlers), no
5xx and no response that breaks the schema. The budget is fixed (examples per operation)
so the run is repeatable; the total number of requests is asserted to be >= 1,000.
"""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.keys import KeyStore
from api.service import create_app
from api.settings import ServiceSettings
from index.ingest import add_manifest
from index.store import Gallery
from matcher.checkpoint import BUNDLED_MODEL_DIR, read_card
from training.synth.catalogue import seed_catalogue
from training.synth.cohort import CohortConfig, generate_cohort

EXAMPLES_PER_OPERATION = 75


def _app():
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="b2g-fuzz-"))
    generate_cohort(CohortConfig(n=12, out=root / "cohort", seed=21, size=256, disorders=("unaffected", "achondroplasia"), workers=1))
    card = read_card(BUNDLED_MODEL_DIR)
    gallery = Gallery.create(root / "gallery", card.fingerprint, card.config.embedding_dim)
    seed_catalogue(gallery)
    add_manifest(gallery, root / "cohort" / "manifest.csv", None, 8, 0)
    gallery.close()
    key, _ = KeyStore(root / "gallery" / "keys.sqlite").create("admin", "fuzz")
    return create_app(ServiceSettings(gallery=root / "gallery", max_upload_bytes=2**20, max_pixels=4_000_000)), key


APP, KEY = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


def _fuzz(operation, calls: dict[str, int]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        calls[operation.label] = calls.get(operation.label, 0) + 1
        # "schema-valid data must be accepted" cannot hold here: no schema can say "a radiograph of a
        # hand"; such refusals are checked to be 4xx problem documents by the remaining checks
        case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, excluded_checks=[positive_data_acceptance])

    check()


def test_api_conforms_to_its_schema_over_at_least_1000_requests() -> None:
    """Every operation of the OpenAPI document, fuzzed in one test that counts its own requests (no order between tests)."""
    calls: dict[str, int] = {}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            _fuzz(operation, calls)
        except Exception as exc:  # every operation is fuzzed; all failures are reported together
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    assert not failures, "\n\n".join(failures)
    assert len(calls) >= 14 and sum(calls.values()) >= 1000, calls
