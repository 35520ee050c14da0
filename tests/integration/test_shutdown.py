"""A stopping worker bounds its jobs, in one process against a real Postgres: past
the grace, a sync body blocked on a row lock has its statement cancelled on its own
connection and an async one is cancelled; each run is recorded ``stopped`` and its
job is back in the queue, due now, while the worker's heartbeat went on. A worker
whose heartbeats stop reaching the database stops its jobs by itself, and an end
that comes after the rescue took the job records nothing.

The real processes and signals are in tests/acceptance/test_shutdown.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from procrastinate import App
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler import maintenance, stopping
from agnt_jobs.scheduler.bodies import BODIES, RunContext
from agnt_jobs.scheduler.tasks import make_task
from agnt_jobs.scheduler.worker import AgntWorker
from agnt_jobs.settings import Settings

GRACE = 0.5
# The tests' jobs only: the worker leaves the schedules' jobs it defers alone.
QUEUE = "test_shutdown"
# The grace, the time jobs get to stop past it, and a second for the records.
EXIT_BOUND = GRACE + stopping.STOP_SECONDS + 1


def _query(engine: Engine, sql: str, **params: Any) -> list[sa.Row]:
    with engine.connect() as connection:
        return list(connection.execute(sa.text(sql), params))


def _wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@contextmanager
def _row_locked(db_url: str) -> Iterator[None]:
    """Row 1 of ``test_locked`` held FOR UPDATE by another session."""
    with psycopg.connect(db_url) as holder:
        holder.execute("SELECT * FROM test_locked WHERE id = 1 FOR UPDATE")
        yield
        holder.rollback()


@contextmanager
def _sync_body(app: App, name: str, body: Callable[[RunContext], dict]) -> Iterator:
    BODIES[name] = body
    try:
        yield make_task(app, name, body, queue=QUEUE)
    finally:
        BODIES.pop(name)
        app.tasks.pop(name)


@asynccontextmanager
async def _worker(app: App, **options: Any) -> AsyncIterator[AgntWorker]:
    """A worker running in this loop; ``exit_process`` records instead of
    ending the test run."""
    defaults = {
        "concurrency": 2,
        "queues": [QUEUE],
        "shutdown_graceful_timeout": GRACE,
        "update_heartbeat_interval": 0.2,
        "fetch_job_polling_interval": 0.2,
    }
    worker = app._worker(install_signal_handlers=False, **{**defaults, **options})
    assert isinstance(worker, AgntWorker)
    worker.exits = []  # type: ignore[attr-defined]
    worker.exit_process = worker.exits.append  # type: ignore[attr-defined,method-assign]
    running = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        if not running.done():
            worker.stop()
        await running


def _blocked_on_a_lock(engine: Engine) -> bool:
    return bool(
        _query(
            engine,
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'",
        )
    )


async def _stop_and_watch(worker: AgntWorker, engine: Engine) -> tuple[float, bool]:
    """Stop ``worker``; how long it took, and whether its heartbeat was recorded
    after the stop while its job was still running."""
    worker_id = worker.worker_id
    stop_at = _query(engine, "SELECT now() AS at")[0].at
    started = time.monotonic()
    worker.stop()
    beat_after_stop = False
    while worker.worker_id is not None:
        rows = await asyncio.to_thread(
            _query,
            engine,
            "SELECT last_heartbeat FROM procrastinate_workers WHERE id = :id",
            id=worker_id,
        )
        if rows and rows[0].last_heartbeat > stop_at and worker._running_jobs:
            beat_after_stop = True
        await asyncio.sleep(0.05)
        assert time.monotonic() - started < 30
    return time.monotonic() - started, beat_after_stop


def _assert_stopped_and_back(engine: Engine, job_id: int) -> None:
    [job] = _query(
        engine,
        "SELECT status::text, attempts, scheduled_at <= now() AS due "
        "FROM procrastinate_jobs WHERE id = :id",
        id=job_id,
    )
    assert (job.status, job.attempts, job.due) == ("todo", 1, True)
    runs = _query(
        engine,
        "SELECT attempt, status, error FROM job_runs WHERE job_id = :id",
        id=job_id,
    )
    assert [(run.attempt, run.status) for run in runs] == [(1, "stopped")]
    assert "worker shutting down" in runs[0].error


@pytest.fixture
def locked_table(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE test_locked (id int PRIMARY KEY)"))
        connection.execute(sa.text("INSERT INTO test_locked VALUES (1)"))


async def test_past_the_grace_a_sync_body_blocked_on_a_lock_is_cancelled_and_requeued(
    app: App, engine: Engine, db_url: str, locked_table: None
) -> None:
    def blocked(ctx: RunContext) -> dict:
        with ctx.engine.begin() as connection:
            connection.execute(sa.text("UPDATE test_locked SET id = 1 WHERE id = 1"))
        return {}

    with _sync_body(app, "test_blocked", blocked) as task, _row_locked(db_url):
        async with app.open_async():
            job_id = await task.defer_async()
            async with _worker(app) as worker:
                await asyncio.to_thread(_wait_for, lambda: _blocked_on_a_lock(engine))
                took, beat_after_stop = await _stop_and_watch(worker, engine)
        # The lock is still held: the statement was cancelled, not let through.
        assert worker.exits == []  # type: ignore[attr-defined]
        assert not _blocked_on_a_lock(engine)
    assert took < EXIT_BOUND
    assert beat_after_stop
    _assert_stopped_and_back(engine, job_id)


async def test_past_the_grace_an_async_body_blocked_on_a_lock_is_cancelled_and_requeued(
    app: App, engine: Engine, db_url: str, locked_table: None
) -> None:
    @app.task(name="test_async_blocked", queue=QUEUE, pass_context=False)
    async def async_blocked() -> None:
        async with await psycopg.AsyncConnection.connect(db_url) as connection:
            await connection.execute("UPDATE test_locked SET id = 1 WHERE id = 1")

    try:
        with _row_locked(db_url):
            async with app.open_async():
                job_id = await async_blocked.defer_async()
                async with _worker(app) as worker:
                    await asyncio.to_thread(
                        _wait_for, lambda: _blocked_on_a_lock(engine)
                    )
                    took, _ = await _stop_and_watch(worker, engine)
            assert not _blocked_on_a_lock(engine)
    finally:
        app.tasks.pop("test_async_blocked")
    assert took < EXIT_BOUND
    _assert_stopped_and_back(engine, job_id)


async def test_a_worker_whose_heartbeats_stop_reaching_the_database_stops_its_jobs(
    app: App, engine: Engine, db_url: str
) -> None:
    """Its heartbeat blocked (another session holds its row), the worker stops
    its job at the next checkpoint before its stall timeout, and records it
    stopped and back in the queue; the process is not ended (the job stopped)."""
    steps = []

    def stepping(ctx: RunContext) -> dict:
        while True:
            ctx.checkpoint()
            steps.append(time.monotonic())
            time.sleep(0.05)

    stalled = 2.0
    with _sync_body(app, "test_stepping", stepping) as task:
        async with app.open_async():
            job_id = await task.defer_async()
            async with _worker(app, stalled_worker_timeout=stalled) as worker:
                await asyncio.to_thread(_wait_for, lambda: len(steps) > 2)
                with psycopg.connect(db_url) as holder:
                    holder.execute(
                        "SELECT 1 FROM procrastinate_workers WHERE id = %s FOR UPDATE",
                        [worker.worker_id],
                    )
                    held = time.monotonic()
                    await asyncio.to_thread(
                        _wait_for, lambda: not worker._running_jobs, stalled + 3
                    )
                    holder.rollback()
                assert worker.exits == []  # type: ignore[attr-defined]
    # The body stopped before the rescue could judge its worker dead.
    assert steps[-1] - held < stalled
    _assert_stopped_and_back(engine, job_id)


async def test_an_end_after_the_rescue_took_the_job_records_nothing(
    app: App, engine: Engine, env: Settings
) -> None:
    """The rescue judges the worker dead (its heartbeat made old by hand) and
    puts the job back; when the body then ends, the worker's success is not
    recorded over the rescue's decision."""
    release = threading.Event()

    def waiting(ctx: RunContext) -> dict:
        release.wait(20)
        return {"done": True}

    with _sync_body(app, "test_waiting", waiting) as task:
        async with app.open_async():
            job_id = await task.defer_async()
            async with _worker(
                app,
                concurrency=1,  # its one slot busy: it cannot take the job back
                update_heartbeat_interval=60,
                stalled_worker_timeout=600,
            ) as worker:
                await asyncio.to_thread(
                    _wait_for,
                    lambda: (
                        _query(
                            engine,
                            "SELECT 1 FROM job_runs WHERE job_id = :id",
                            id=job_id,
                        )
                        != []
                    ),
                )
                with engine.begin() as connection:
                    connection.execute(
                        sa.text(
                            "UPDATE procrastinate_workers SET last_heartbeat = "
                            "now() - interval '1 hour' WHERE id = :id"
                        ),
                        {"id": worker.worker_id},
                    )
                rescued = await asyncio.to_thread(
                    maintenance.rescue_stalled, engine, env
                )
                assert rescued == {"retried": 1, "failed": 0}
                # Another worker's claim: the job runs again, attempt 2.
                with engine.begin() as connection:
                    connection.execute(
                        sa.text(
                            "UPDATE procrastinate_jobs SET status = 'doing', "
                            "worker_id = NULL WHERE id = :id"
                        ),
                        {"id": job_id},
                    )
                release.set()
                await asyncio.to_thread(_wait_for, lambda: not worker._running_jobs)
    [job] = _query(
        engine,
        "SELECT status::text, attempts FROM procrastinate_jobs WHERE id = :id",
        id=job_id,
    )
    assert (job.status, job.attempts) == ("doing", 1)
    [run] = _query(engine, "SELECT status FROM job_runs WHERE job_id = :id", id=job_id)
    assert run.status == "failed"  # as the rescue recorded it: its worker lost
