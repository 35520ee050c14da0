"""A fuzz run of the admin API's OpenAPI schema (schemathesis): requests that fit
the schema and requests that break it, with the token, on a database with real runs
in it. No request may get a 5xx, and every answer must be one the schema documents,
in the shape it documents; schemathesis also replays requests without the token and
fails if one is accepted.

Every check runs but one: "schema-valid data is accepted" cannot hold for an
opaque cursor or a job name, which the schema types as strings but which must be a
cursor this endpoint issued and a job that exists (422 otherwise, by design).

Schemathesis leaves lone surrogates out of what it generates (they cannot be sent
as text), and keeps dates within what the schema says; a JSON body can carry both
(``"\\ud800"``, ``"9999-12-31T23:59:59-14:00"``). So a third run takes its cases
and puts, at random, text with lone surrogates and instants from year 1 to year
9999 in any zone into the body's fields and the query's times.

Schemathesis's pytest plugin does not run on pytest 9 yet, so its strategies are
driven with Hypothesis here; a few dozen examples per operation keep it to seconds.
"""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.engine import Engine

from agnt_jobs import settings as agnt_settings
from agnt_jobs.admin import create_app
from agnt_jobs.scheduler.worker import AgntApp
from tests.support.admin_data import HEADERS, drain

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette would rather have httpx2
    from fastapi.testclient import TestClient

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
        "GET /admin/scheduler/runs/{job_id}",
        "POST /admin/scheduler/{schedule_id}/run",
        "POST /admin/scheduler/{schedule_id}/pause",
        "POST /admin/scheduler/{schedule_id}/resume",
        "PATCH /admin/scheduler/{schedule_id}",
        "POST /admin/scheduler/{schedule_id}/reset",
        "POST /admin/scheduler/runs/{job_id}/cancel",
        "POST /admin/scheduler/runs/{job_id}/retry",
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


# Text no encoding has: lone surrogates, alone or inside ordinary text.
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
UNENCODABLE = st.builds(
    lambda before, bad, after: before + "".join(bad) + after,
    st.text(max_size=8),
    st.lists(SURROGATES, min_size=1, max_size=3),
    st.text(max_size=8),
)
# Instants at the edges of what Python and ISO 8601 hold, in the farthest zones.
ZONES = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=14))]
)
EXTREME_TIMES = st.one_of(
    st.sampled_from(
        [
            "9999-12-31T23:59:59-14:00",
            "9999-12-31T23:59:59.999999",
            "0001-01-01T00:00:00+14:00",
            "0001-01-01T00:00:00",
            "1969-12-31T23:59:59Z",
            "294276-12-31T23:59:59Z",
            "infinity",
        ]
    ),
    st.builds(
        lambda at, zone: at.replace(tzinfo=zone).isoformat(),
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
        ZONES,
    ),
)
# What every answer must be: no 5xx, a status and a shape the schema documents.
ANSWER_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
BODY_FIELDS = ["cron", "zone", "misfire_policy", "timeout", "by", "job"]
TIME_FIELDS = ["at", "since", "until"]


@st.composite
def _poisoned(
    draw: st.DrawFn, case: schemathesis.Case
) -> tuple[schemathesis.Case, Any, dict[str, Any]]:
    """``case`` with its body and query, the body with unencodable text and
    extreme instants in its fields (those it has, and some it may not), the
    query with extreme instants in its times. Kept apart from the case, whose
    own checks cannot read a lone surrogate."""
    body: Any = None if isinstance(case.body, NotSet) else case.body
    if isinstance(body, dict) or case.operation.method.upper() != "GET":
        body = dict(body) if isinstance(body, dict) else {}
        for field in draw(st.lists(st.sampled_from(BODY_FIELDS), max_size=3)):
            body[field] = draw(UNENCODABLE)
        for field in draw(st.lists(st.sampled_from(TIME_FIELDS), max_size=2)):
            body[field] = draw(st.one_of(EXTREME_TIMES, UNENCODABLE))
    query = dict(case.query or {})
    if case.operation.path == "/admin/scheduler/runs":
        for field in draw(st.lists(st.sampled_from(["since", "until"]), max_size=2)):
            query[field] = draw(EXTREME_TIMES)
    return case, body, query


def test_no_5xx_with_unencodable_text_and_extreme_times(
    admin_schema: schemathesis.BaseSchema,
) -> None:
    client = TestClient(admin_schema.app)
    statuses: dict[str, set[int]] = {}
    for result in admin_schema.get_all_operations():
        operation = result.ok()
        statuses[operation.label] = set()
        cases = operation.as_strategy(
            generation_mode=GenerationMode.POSITIVE, headers=HEADERS
        ).flatmap(_poisoned)

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(poisoned=cases)
        def call(poisoned: tuple[schemathesis.Case, Any, dict[str, Any]]) -> None:
            case, body, query = poisoned
            # Sent by hand: schemathesis would check the body against the schema
            # first, and its validator cannot read a lone surrogate. json.dumps
            # writes one as the escape a client sends.
            response = client.request(
                case.method,
                case.formatted_path,
                params=query,
                headers={**HEADERS, "Content-Type": "application/json"},
                content=None if body is None else json.dumps(body),
            )
            case.validate_response(response, checks=ANSWER_CHECKS)
            statuses[operation.label].add(response.status_code)  # noqa: B023 (called below, in this iteration)

        call()
    assert all(code < 500 for codes in statuses.values() for code in codes)
    # The poison reached the routes' checks: refusals at a field, not 401s.
    assert 422 in statuses["PATCH /admin/scheduler/{schedule_id}"]
    assert 422 in statuses["POST /admin/scheduler/runs/retry"]
    assert 422 in statuses["GET /admin/scheduler/runs"]
