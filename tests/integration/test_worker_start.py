"""A worker's start: the schedules table is synced once the first claim is
answered, beside the jobs it started, not before them (the claims need nothing of
it); the deferrer passes only once the sync is done; and a sync that fails stops
the worker with the sync's reason, whatever the worker had claimed meanwhile. A
real worker on a real database; only the sync is held (or made to fail) until a
job has run."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from procrastinate import App
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler import deploy
from agnt_jobs.scheduler.bodies import BODIES, RunContext
from agnt_jobs.scheduler.deferrer import ScheduleDeferrer
from agnt_jobs.scheduler.tasks import make_task
from agnt_jobs.scheduler.worker import AgntWorker
from agnt_jobs.settings import ConfigError

QUEUE = "test_start"
JOB = "test_start"
# How long the held sync waits for the job before it goes on anyway (a worker
# that syncs before it claims never runs the job first).
HOLD_SECONDS = 3.0


class Start:
    """What happened when, during one worker's start."""

    def __init__(self) -> None:
        self.ran = threading.Event()
        self.ran_at: float | None = None
        self.synced_at: float | None = None
        self.passes: list[float] = []


@pytest.fixture
def start(app: App, monkeypatch: pytest.MonkeyPatch) -> Iterator[Start]:
    """A job on the test's queue whose body says when it ran, and a deferrer whose
    passes are timed."""
    seen = Start()

    def body(ctx: RunContext) -> dict[str, Any]:
        seen.ran_at = time.monotonic()
        seen.ran.set()
        return {}

    pass_once = ScheduleDeferrer.pass_once

    async def timed(
        deferrer: ScheduleDeferrer, now: float, toward: datetime | None
    ) -> float:
        seen.passes.append(time.monotonic())
        return await pass_once(deferrer, now, toward)

    monkeypatch.setattr(ScheduleDeferrer, "pass_once", timed)
    BODIES[JOB] = body
    task = make_task(app, JOB, body, queue=QUEUE)
    task.queueing_lock = None
    task.lock = None
    try:
        yield seen
    finally:
        BODIES.pop(JOB)
        app.tasks.pop(JOB)


async def _job_ran(start: Start) -> bool:
    return await asyncio.to_thread(start.ran.wait, HOLD_SECONDS)


async def _run_one_job(app: App, *, wait: bool = False) -> None:
    """Defer one run of the job, then run a worker on its queue until it returns."""
    async with app.open_async():
        await app.tasks[JOB].defer_async()
        await asyncio.wait_for(
            app.run_worker_async(
                queues=[QUEUE], wait=wait, install_signal_handlers=False
            ),
            30,
        )


async def test_a_worker_claims_while_its_schedules_are_synced(
    app: App, engine: Engine, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync is held until the job has run: the job runs (the sync is not
    waited for), the deferrer's first pass comes after the sync, and a worker
    that has nothing left to do still syncs before it returns."""
    sync_table = deploy.sync_table

    async def held(app: Any) -> list[str]:
        await _job_ran(start)
        removed = await sync_table(app)
        start.synced_at = time.monotonic()
        return removed

    monkeypatch.setattr(deploy, "sync_table", held)
    await _run_one_job(app)

    assert start.ran_at is not None and start.synced_at is not None
    assert start.ran_at < start.synced_at
    assert all(at > start.synced_at for at in start.passes)
    with engine.connect() as connection:
        declared = connection.execute(
            sa.text("SELECT count(*) FROM schedules WHERE declared")
        ).scalar_one()
        status = connection.execute(
            sa.text("SELECT status FROM procrastinate_jobs WHERE task_name = :job"),
            {"job": JOB},
        ).scalar_one()
    assert declared > 0
    assert status == "succeeded"


async def test_a_sync_that_fails_after_a_claim_stops_the_worker_with_its_reason(
    app: App, engine: Engine, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync fails once the job has run: the worker, which would otherwise
    wait for jobs forever, stops, its job's end recorded, leaves the workers
    table, and raises the sync's error; the deferrer never passed."""
    reason = "the database refuses a declared schedule: held by the test"

    async def refused(app: Any) -> list[str]:
        await _job_ran(start)
        raise ConfigError(reason)

    monkeypatch.setattr(deploy, "sync_table", refused)
    with pytest.raises(ConfigError) as stopped:
        await _run_one_job(app, wait=True)

    assert str(stopped.value) == reason
    assert start.ran_at is not None
    assert start.passes == []
    with engine.connect() as connection:
        status = connection.execute(
            sa.text("SELECT status FROM procrastinate_jobs WHERE task_name = :job"),
            {"job": JOB},
        ).scalar_one()
        workers = connection.execute(
            sa.text("SELECT count(*) FROM procrastinate_workers")
        ).scalar_one()
    assert status == "succeeded"
    assert workers == 0


async def test_the_sync_starts_once_the_first_claim_is_answered(
    app: App, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prune, the register and the first claim go first: the sync's
    statements start only once the first claim has its answer."""
    answered: list[float] = []
    claim = AgntWorker._claim

    async def timed_claim(worker: AgntWorker, n: int) -> list[dict[str, Any]]:
        rows = await claim(worker, n)
        answered.append(time.monotonic())
        return rows

    sync_table = deploy.sync_table
    began: list[float] = []

    async def timed_sync(app: Any) -> list[str]:
        began.append(time.monotonic())
        return await sync_table(app)

    monkeypatch.setattr(AgntWorker, "_claim", timed_claim)
    monkeypatch.setattr(deploy, "sync_table", timed_sync)
    await _run_one_job(app)

    assert start.ran_at is not None
    assert len(began) == 1 and answered
    assert began[0] >= answered[0]
