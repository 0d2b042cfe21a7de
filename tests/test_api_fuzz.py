"""Schemathesis against the app's own OpenAPI document: every operation, generated requests
with a valid admin key (so requests get past authentication and reach the handlers), no
5xx and no response that breaks the schema. The budget is fixed (examples per operation)
so the run is repeatable; the total number of requests is asserted to be >= 1,000.
"""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from api.cli_gallery import add_manifest, seed_catalogue  # noqa: E402
from api.keys import KeyStore  # noqa: E402
from api.runtime import ServiceSettings  # noqa: E402
from api.service import create_app  # noqa: E402
from index.store import Gallery  # noqa: E402
from matcher.checkpoint import BUNDLED_MODEL_DIR, read_card  # noqa: E402
from training.synth.cohort import CohortConfig, generate_cohort  # noqa: E402

EXAMPLES_PER_OPERATION = 75
CALLS = {"count": 0}


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


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case) -> None:
    CALLS["count"] += 1
    # "schema-valid data must be accepted" cannot hold here: no schema can say "a radiograph of a
    # hand"; such refusals are checked to be 4xx problem documents by the remaining checks
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, excluded_checks=[positive_data_acceptance])


def test_fuzzing_budget_was_spent() -> None:
    """Runs after the parametrized test in file order: at least 1,000 generated requests."""
    assert CALLS["count"] >= 1000, CALLS
