"""Schemathesis against the app's own OpenAPI document: every operation, generated requests
with a valid admin key (so requests get past authentication and reach the handlers), no
5xx and no response that breaks the schema. The budget is fixed (examples per operation)
so the run is repeatable; with -m slow the total number of requests is asserted to be >= 1,000
(the default suite runs a quick pass of 2 examples per operation).
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from conftest import copy_of_template
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.keys import KeyStore
from api.service import create_app
from api.settings import ServiceSettings

EXAMPLES_PER_OPERATION = 75


@pytest.fixture(scope="module")
def fuzzed(gallery_template: tuple, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The app on a private copy of the session's template gallery, with an admin key."""
    gallery, _, _ = copy_of_template(gallery_template, tmp_path_factory.mktemp("fuzz"))
    key, _ = KeyStore(gallery / "keys.sqlite").create("admin", "fuzz")
    app = create_app(ServiceSettings(gallery=gallery, max_upload_bytes=2**20, max_pixels=4_000_000))
    return schemathesis.openapi.from_asgi("/openapi.json", app), key


def _fuzz(operation, key: str, calls: dict[str, int], examples: int) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=examples, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        calls[operation.label] = calls.get(operation.label, 0) + 1
        # "schema-valid data must be accepted" cannot hold here: no schema can say "a radiograph of a
        # hand"; such refusals are checked to be 4xx problem documents by the remaining checks
        case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, excluded_checks=[positive_data_acceptance])

    check()


@pytest.mark.parametrize(
    ("examples", "at_least"),
    [pytest.param(2, 25, id="quick"), pytest.param(EXAMPLES_PER_OPERATION, 1000, id="1000-requests", marks=pytest.mark.slow)],
)
def test_api_conforms_to_its_schema(fuzzed: tuple, examples: int, at_least: int) -> None:
    """Every operation of the OpenAPI document, fuzzed in one test that counts its own requests (no order between
    tests): a quick pass in the default suite, at least 1,000 requests with -m slow."""
    schema, key = fuzzed
    calls: dict[str, int] = {}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        try:
            _fuzz(operation, key, calls, examples)
        except Exception as exc:  # every operation is fuzzed; all failures are reported together
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    assert not failures, "\n\n".join(failures)
    assert len(calls) >= 14 and sum(calls.values()) >= at_least, calls
