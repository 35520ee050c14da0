"""A fuzz run of the admin API's OpenAPI schema (schemathesis): requests that fit
the schema and requests that break it, with the token, on a database with real runs
in it. No request may get a 5xx, and every answer must be one the schema documents,
in the shape it documents; schemathesis also replays requests without the token and
fails if one is accepted.

Every check runs but one: "schema-valid data is accepted" cannot hold for an
opaque cursor or a job name, which the schema types as strings but which must be a
cursor this endpoint issued and a job that exists (422 otherwise, by design).

Schemathesis's pytest plugin does not run on pytest 9 yet, so its strategies are
driven with Hypothesis here; a few dozen examples per operation keep it to seconds.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy.engine import Engine

from agnt_jobs import settings as agnt_settings
from agnt_jobs.admin import create_app
from agnt_jobs.scheduler.worker import AgntApp
from tests.support.admin_data import HEADERS, drain

EXAMPLES = 30
REGISTRY = "GET /admin/scheduler"


@pytest.fixture
async def admin_schema(
    token_env: agnt_settings.Settings,
    app: AgntApp,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> schemathesis.BaseSchema:
    # Schemathesis sends wrong tokens on purpose; the throttle would answer most
    # of the run with 429 (documented, but it would hide the routes behind it).
    monkeypatch.setenv("AGNT_ADMIN_FAILURES_PER_MINUTE", "1000000")
    agnt_settings.get_settings.cache_clear()
    async with app.open_async():
        await app.tasks["selfcheck"].defer_async()
    await drain(app)
    # A waiting run, so that "run now" can meet its 409 too.
    async with app.open_async():
        await app.tasks["clean_finished_jobs"].defer_async()
    return schemathesis.openapi.from_asgi(
        "/admin/scheduler/openapi.json", create_app(), headers=HEADERS
    )


def test_the_schema_lists_every_endpoint(admin_schema: schemathesis.BaseSchema) -> None:
    operations = {
        f"{result.ok().method.upper()} {result.ok().path}"
        for result in admin_schema.get_all_operations()
    }
    assert operations == {
        "GET /admin/scheduler",
        "GET /admin/scheduler/runs",
        "GET /admin/scheduler/runs/{run_id}",
        "POST /admin/scheduler/{schedule_id}/run",
        "POST /admin/scheduler/{schedule_id}/pause",
        "POST /admin/scheduler/{schedule_id}/resume",
        "PATCH /admin/scheduler/{schedule_id}",
        "POST /admin/scheduler/{schedule_id}/reset",
        "POST /admin/scheduler/runs/{run_id}/cancel",
        "POST /admin/scheduler/runs/{run_id}/retry",
        "POST /admin/scheduler/runs/retry",
    }


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_5xx_and_answers_match_the_schema(
    admin_schema: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    statuses: dict[str, set[int]] = {}
    for result in admin_schema.get_all_operations():
        operation = result.ok()
        if mode is GenerationMode.NEGATIVE and operation.label == REGISTRY:
            continue  # it takes no parameter: there is nothing to get wrong
        statuses[operation.label] = set()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode, headers=HEADERS))
        def call(case: schemathesis.Case) -> None:
            response = case.call_and_validate(
                excluded_checks=[positive_data_acceptance]
            )
            statuses[operation.label].add(response.status_code)  # noqa: B023 (called below, in this iteration)

        call()
    # The token reached the endpoints: this was not a run of 401s.
    if mode is GenerationMode.POSITIVE:
        assert 200 in statuses[REGISTRY]
        assert 200 in statuses["GET /admin/scheduler/runs"]
        assert 404 in statuses["POST /admin/scheduler/{schedule_id}/pause"]
    else:
        assert 422 in statuses["GET /admin/scheduler/runs"]
    assert all(code < 500 for codes in statuses.values() for code in codes)
