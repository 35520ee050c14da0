"""A run's deadline and an operator's cancel, with a real worker in this process: a
run past its schedule's timeout stops at its next checkpoint and ends ``timed_out``;
a running run cancelled through the SQL interface stops at its next checkpoint and
ends ``cancelled``; neither is retried. A run cut off by the database is retried,
and its retry does the work. The same with worker processes and the CLI is
``tests/acceptance/test_run_control.py`` and ``test_database_faults.py``; these are
in the fast subset."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from procrastinate import PsycopgConnector
from sqlalchemy.engine import Engine

from agnt_jobs.checkpoint import checkpoint
from agnt_jobs.scheduler import control, deploy
from agnt_jobs.scheduler.bodies import BODIES, RunContext
from agnt_jobs.scheduler.declaration import Schedule
from agnt_jobs.scheduler.history import record_run
from agnt_jobs.scheduler.tasks import make_task
from agnt_jobs.scheduler.worker import AgntApp
from agnt_jobs.settings import Settings
from tests.support.waiting import until

# The body: this many steps of this long, a checkpoint before each (5 s in all).
STEPS, STEP_SECONDS = 100, 0.05
OPERATOR = control.Actor(by="ops@example", source="sql")


def steps(ctx: RunContext) -> dict[str, int]:
    for _ in range(STEPS):
        checkpoint()
        time.sleep(STEP_SECONDS)
    return {"steps": STEPS}


def cut_once(ctx: RunContext) -> dict[str, int]:
    """Its first run loses its connection: the server ends the session under it."""
    if not CUT:
        CUT.append(ctx.job_id)
        with ctx.engine.connect() as connection:
            connection.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))
    return {"done": 1}


CUT: list[int] = []


def _rows(engine: Engine, query: str, **params: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(sa.text(query), params))


def _run(engine: Engine, job_id: int) -> Any:
    rows = _rows(
        engine,
        "SELECT r.status, r.error, r.result, r.finished_at - r.started_at AS took, "
        "j.status AS job_status FROM job_runs r JOIN procrastinate_jobs j "
        "ON j.id = r.job_id WHERE r.job_id = :id",
        id=job_id,
    )
    return rows[0] if rows else None


@pytest.fixture
async def app(db_url: str, env: Settings) -> AsyncIterator[AgntApp]:
    """An App with one job, ``test_steps``, whose schedule's timeout is 1 s."""
    app = AgntApp(
        connector=PsycopgConnector(conninfo=db_url),
        worker_defaults={"worker_middleware": [record_run], "delete_jobs": "never"},
    )
    BODIES["test_steps"], BODIES["test_cut"] = steps, cut_once
    make_task(app, "test_steps", steps)
    make_task(app, "test_cut", cut_once)
    CUT.clear()
    schedule = Schedule(
        "test_steps", "0 0 1 1 *", "Steps.", timeout=timedelta(seconds=1)
    )
    deploy.register(app, [schedule])
    try:
        async with app.open_async():
            await deploy.sync_table(app)
            yield app
    finally:
        BODIES.pop("test_steps")
        BODIES.pop("test_cut")


@contextlib.asynccontextmanager
async def _worker(app: AgntApp, listen: bool = True) -> AsyncIterator[None]:
    """A worker running ``app``'s jobs, which learns of a cancel from its LISTEN
    (if ``listen``) and by looking for cancelled runs every 0.1 s."""
    worker = app._worker(
        install_signal_handlers=False,
        concurrency=1,
        abort_job_polling_interval=0.1,
        listen_notify=listen,
        fetch_job_polling_interval=0.1,
    )
    running = asyncio.create_task(worker.run())
    try:
        yield
        assert not running.done(), running
    finally:
        worker.stop()
        await asyncio.gather(running, return_exceptions=True)


def _ended(engine: Engine, job_id: int) -> bool:
    """The run's end and the job's are both recorded."""
    run = _run(engine, job_id)
    return run is not None and run.took is not None and run.job_status != "doing"


def _not_retried(engine: Engine) -> None:
    [(count,)] = _rows(engine, "SELECT count(*) FROM procrastinate_jobs")
    assert count == 1


async def test_a_run_past_its_schedules_timeout_ends_timed_out_at_a_checkpoint(
    app: AgntApp, engine: Engine
) -> None:
    job_id = await app.tasks["test_steps"].defer_async()
    async with _worker(app):
        assert await until(lambda: _ended(engine, job_id), 10), _run(engine, job_id)
    run = _run(engine, job_id)
    assert (run.status, run.result, run.job_status) == ("timed_out", None, "failed")
    assert "took longer than 0:00:01" in run.error
    assert run.took < timedelta(seconds=STEPS * STEP_SECONDS)
    _not_retried(engine)


@pytest.mark.parametrize(
    "listen", [True, False], ids=["told by NOTIFY", "found by polling"]
)
async def test_a_running_run_an_operator_cancels_ends_cancelled_at_a_checkpoint(
    app: AgntApp, engine: Engine, listen: bool
) -> None:
    with engine.begin() as connection:  # no deadline: only the cancel stops it
        connection.execute(
            sa.text("UPDATE schedules SET timeout = '1 hour' WHERE id = 'test_steps'")
        )
    job_id = await app.tasks["test_steps"].defer_async()
    async with _worker(app, listen):
        assert await until(lambda: _run(engine, job_id) is not None, 10)
        assert await asyncio.to_thread(control.cancel, engine, job_id, OPERATOR) == (
            "cancelling"
        )
        assert await until(lambda: _ended(engine, job_id), 10), _run(engine, job_id)
    run = _run(engine, job_id)
    assert (run.status, run.result) == ("cancelled", None)
    assert run.job_status == "aborted", run.job_status
    assert run.took < timedelta(seconds=STEPS * STEP_SECONDS)
    _not_retried(engine)


async def test_a_run_cut_off_by_the_database_is_retried_and_its_retry_succeeds(
    app: AgntApp, engine: Engine
) -> None:
    job_id = await app.tasks["test_cut"].defer_async()
    async with _worker(app):
        assert await until(lambda: len(_attempts(engine, job_id)) == 2, 20), _attempts(
            engine, job_id
        )
        assert await until(lambda: _ended(engine, job_id), 10), _run(engine, job_id)
    first, second = _attempts(engine, job_id)
    assert first.status == "failed"
    assert first.error.startswith("agnt_jobs.scheduler.tasks.DatabaseConnectionLost")
    assert (second.status, second.result) == ("succeeded", {"done": 1})


def _attempts(engine: Engine, job_id: int) -> list[Any]:
    return _rows(
        engine,
        "SELECT attempt, status, error, result FROM job_runs WHERE job_id = :id "
        "ORDER BY attempt",
        id=job_id,
    )
