"""The trace context carried from whoever defers to the run: ``agnt-jobs run``'s
function, ``defer()`` in a caller's transaction, the admin's run now, the App's
own defer (``procrastinate defer``) and a job that defers another. Each run's
span is a child of the span that deferred it, in its trace. Also the spans inside
a run (its chunks) and the deferrer's tick decisions; and, with traces off, no
span and no row. All recorded by the SDK's in-memory exporter around a real worker
on a real database."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from procrastinate import App, PsycopgConnector
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agnt_jobs import settings, tracing, walk
from agnt_jobs.admin import create_app
from agnt_jobs.db.connector import SettingsConnector
from agnt_jobs.scheduler import control, deploy, tasks
from agnt_jobs.scheduler.bodies import BODIES, RunContext
from agnt_jobs.scheduler.declaration import Schedule
from agnt_jobs.scheduler.defer import DeferRefused, defer
from agnt_jobs.scheduler.deferrer import ScheduleDeferrer
from agnt_jobs.scheduler.worker import AgntApp
from tests.support.admin_data import HEADERS, TOKEN
from tests.support.tracing import child_of, named, tree
from tests.support.tracing import spans as spans

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

JOB = "selfcheck"  # needs no settings: a real worker runs it to success
OPERATIONS = Path(__file__).parents[2] / "docs" / "operations.md"


async def _run_waiting_jobs(app: App) -> None:
    async with app.open_async():
        await app.run_worker_async(wait=False, install_signal_handlers=False)


def _traceparents(engine: Engine) -> dict[int, str]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT job_id, traceparent FROM job_traces"))
        return {row.job_id: row.traceparent for row in rows}


def _assert_deferred_then_run(
    exporter: InMemorySpanExporter, job: str, job_id: int
) -> ReadableSpan:
    """The run's span is a consumer, the child of a producer span that deferred
    it; that span."""
    run = named(exporter, f"run {job}")
    (deferred,) = [
        s
        for s in exporter.get_finished_spans()
        if s.name == f"defer {job}" and child_of(run, s)
    ]
    assert deferred.kind == trace.SpanKind.PRODUCER
    assert run.kind == trace.SpanKind.CONSUMER
    assert run.attributes is not None and run.attributes["agnt.job_id"] == job_id
    assert run.attributes["agnt.outcome"] == "succeeded"
    return deferred


async def test_agnt_jobs_run_is_the_parent_of_the_run_it_defers(
    app: App, engine: Engine, env: settings.Settings, spans: InMemorySpanExporter
) -> None:
    assert isinstance(app, AgntApp)
    job_id = control.run_now(app, engine, env, JOB)
    assert set(_traceparents(engine)) == {job_id}
    await _run_waiting_jobs(app)
    # Nothing was current: the defer is the trace's root.
    assert _assert_deferred_then_run(spans, JOB, job_id).parent is None


async def test_defer_in_a_callers_transaction_continues_the_callers_trace(
    app: App, engine: Engine, spans: InMemorySpanExporter
) -> None:
    assert isinstance(app, AgntApp)
    async with app.open_async():
        await deploy.sync_table(app)
    tracer = trace.get_tracer("the backend")
    with tracer.start_as_current_span("book a table"), Session(engine) as session:
        with session.begin():
            job_id = defer(session, JOB)
        # A transaction rolled back takes its job's trace context with it.
        with session.begin():
            defer(session, JOB, queueing_lock="rolled back")
            session.rollback()
    assert set(_traceparents(engine)) == {job_id}
    await _run_waiting_jobs(app)
    deferred = _assert_deferred_then_run(spans, JOB, job_id)
    assert child_of(deferred, named(spans, "book a table"))


def test_a_traceparent_given_to_agnt_defer_is_checked_and_carried(
    app: App, engine: Engine
) -> None:
    """A caller of the SQL function passes its own traceparent; a malformed one is
    refused with a line that says what to give, and nothing is deferred."""
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with engine.begin() as connection:
        connection.execute(
            sa.text("SELECT agnt_declare_jobs(CAST(:jobs AS jsonb))"),
            {"jobs": json.dumps([{"id": JOB, "queue": "default", "arguments": []}])},
        )
        job_id = connection.execute(
            sa.text("SELECT agnt_defer(:job, '{}', NULL, NULL, :traceparent)"),
            {"job": JOB, "traceparent": given},
        ).scalar_one()
    assert _traceparents(engine) == {job_id: given}
    refused = "is not a W3C traceparent: give 00-"
    with (
        pytest.raises(sa.exc.DBAPIError, match=refused),
        engine.begin() as connection,
    ):
        connection.execute(
            sa.text("SELECT agnt_defer(:job, '{}', NULL, 'x', 'not-a-trace')"),
            {"job": JOB},
        )
    with engine.connect() as connection:
        waiting = connection.execute(
            sa.text("SELECT count(*) FROM procrastinate_jobs")
        ).scalar_one()
    assert waiting == 1


async def test_the_admins_run_now_is_the_parent_of_its_run(
    app: App,
    engine: Engine,
    env: settings.Settings,
    monkeypatch: pytest.MonkeyPatch,
    spans: InMemorySpanExporter,
) -> None:
    monkeypatch.setenv("INTERNAL_API_TOKEN", TOKEN)
    settings.get_settings.cache_clear()
    with TestClient(create_app()) as client:
        answer = client.post(f"/admin/scheduler/{JOB}/run", headers=HEADERS)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    await _run_waiting_jobs(app)
    _assert_deferred_then_run(spans, JOB, job_id)


async def test_the_apps_defer_and_a_job_that_defers_another_carry_the_trace(
    env: settings.Settings, engine: Engine, spans: InMemorySpanExporter
) -> None:
    """Through our connector, as ``procrastinate defer`` with our App does: the
    first run is a child of the caller's defer, and the run a body defers is a
    child of that body's defer, a child of its run: one trace."""
    from agnt_jobs.app import app as agnt_app

    def parent(ctx: RunContext) -> dict[str, int]:
        agnt_app.tasks["test_trace_child"].defer()
        return {"deferred": 1}

    _error_rows(engine, 3)

    def child(ctx: RunContext) -> dict[str, int]:
        done = walk.run_chunked(engine, PRUNE, {}, chunk_size=2, action="prune")
        return {"deleted": done.rows}

    for name, body in (("test_trace_parent", parent), ("test_trace_child", child)):
        BODIES[name] = body
        tasks.make_task(agnt_app, name, body)
    tracer = trace.get_tracer("a script")
    try:
        with agnt_app.replace_connector(SettingsConnector()) as app:
            async with app.open_async():
                with tracer.start_as_current_span("operator's script"):
                    await app.tasks["test_trace_parent"].defer_async()
                # The second pass runs the job the first one's run deferred.
                for _ in range(2):
                    await app.run_worker_async(
                        wait=False, install_signal_handlers=False
                    )
    finally:
        for name in ("test_trace_parent", "test_trace_child"):
            BODIES.pop(name)
            agnt_app.tasks.pop(name)
    script = named(spans, "operator's script")
    first_defer = named(spans, "defer test_trace_parent")
    first_run = named(spans, "run test_trace_parent")
    second_defer = named(spans, "defer test_trace_child")
    second_run = named(spans, "run test_trace_child")
    assert child_of(first_defer, script)
    assert child_of(first_run, first_defer)
    assert child_of(second_defer, first_run)
    assert child_of(second_run, second_defer)
    assert len(_traceparents(engine)) == 2
    # docs/operations.md shows this trace as it is recorded here.
    example = tree(spans, script)
    assert f"```text\n{example}\n```" in OPERATIONS.read_text("utf-8"), example


# A chunked delete of the rows _error_rows writes.
PRUNE = sa.text(
    "DELETE FROM error_log WHERE ctid = ANY(ARRAY(SELECT ctid FROM error_log "
    "WHERE source = 'trace' ORDER BY id LIMIT :limit))"
)


def _error_rows(engine: Engine, count: int) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO error_log (source, message) "
                "SELECT 'trace', 'row ' || n FROM generate_series(1, :count) n"
            ),
            {"count": count},
        )


async def test_each_chunk_of_a_chunked_run_is_a_child_span_of_the_run(
    app: App, engine: Engine, spans: InMemorySpanExporter
) -> None:
    _error_rows(engine, 5)

    def chunked(ctx: RunContext) -> dict[str, int]:
        done = walk.run_chunked(engine, PRUNE, {}, chunk_size=2, action="prune")
        return {"deleted": done.rows}

    BODIES["test_trace_chunks"] = chunked
    tasks.make_task(app, "test_trace_chunks", chunked)
    try:
        async with app.open_async():
            await app.tasks["test_trace_chunks"].defer_async()
            await app.run_worker_async(wait=False, install_signal_handlers=False)
    finally:
        BODIES.pop("test_trace_chunks")
        app.tasks.pop("test_trace_chunks")
    run = named(spans, "run test_trace_chunks")
    chunks = [s for s in spans.get_finished_spans() if s.name == "chunk prune"]
    assert all(child_of(chunk, run) for chunk in chunks)
    assert [dict(chunk.attributes or {}) for chunk in chunks] == [
        {"agnt.chunk": 1, "agnt.rows": 2},
        {"agnt.chunk": 2, "agnt.rows": 2},
        {"agnt.chunk": 3, "agnt.rows": 1},
    ]


HOURLY = Schedule("hourly_sweep", "0 * * * *", "Sweep.", queue="sweeps")
WITA = ZoneInfo("Asia/Makassar")


@pytest.fixture
async def scheduled(db_url: str, env: settings.Settings) -> AsyncIterator[AgntApp]:
    app = AgntApp(connector=PsycopgConnector(conninfo=db_url))
    tasks.make_task(app, HOURLY.id, lambda ctx: {})
    deploy.register(app, [HOURLY])
    async with app.open_async():
        await deploy.sync_table(app)
        yield app


async def test_each_tick_decision_is_a_span(
    scheduled: AgntApp, env: settings.Settings, spans: InMemorySpanExporter
) -> None:
    ten = datetime(2026, 3, 4, 10, tzinfo=WITA).timestamp()
    await ScheduleDeferrer(app=scheduled, settings=env, worker_id=None).defer_due(
        ten + 0.5
    )
    decided = named(spans, f"tick {HOURLY.id}")
    attributes = dict(decided.attributes or {})
    assert isinstance(attributes.pop("agnt.job_id"), int)
    assert attributes == {
        "agnt.schedule": HOURLY.id,
        "agnt.tick": int(ten),
        "agnt.outcome": "deferred",
    }


def test_with_traces_off_a_defer_makes_no_span_and_writes_no_row(
    app: App,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    spans: InMemorySpanExporter,
) -> None:
    """Off as in a process where no tracer provider was set (the default)."""
    monkeypatch.setattr(tracing, "_on", False)
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)

    def no_span(*args: object, **kwargs: object) -> None:
        raise AssertionError("a span was asked for with traces off")

    monkeypatch.setattr(trace, "get_tracer", no_span)
    assert isinstance(app, AgntApp)
    job_id = control.run_now(app, engine, settings.get_settings(), JOB)
    with Session(engine) as session, session.begin(), pytest.raises(DeferRefused):
        defer(session, "no_such_job")
    assert job_id > 0
    assert _traceparents(engine) == {}
    assert spans.get_finished_spans() == ()


def test_traces_are_off_by_default() -> None:
    """A fresh process with the extra installed and no OTEL_* variables: no
    provider, nothing recorded, no span object made, no traceparent to carry."""
    probe = (
        "import json\n"
        "from opentelemetry import trace\n"
        "from agnt_jobs import tracing\n"
        "configured = tracing.configure()\n"
        "def boom(*a, **k): raise AssertionError('a tracer was asked for')\n"
        "trace.get_tracer = boom\n"
        "with tracing.span('run x', {'agnt.job': 'x'}) as s:\n"
        "    s.set_attribute('agnt.outcome', 'succeeded')\n"
        "    carried = tracing.traceparent()\n"
        "print(json.dumps([configured, tracing.on(), s is tracing._UNRECORDED,"
        " carried]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [False, False, True, None]
