"""A released lock hands over at once: when a job holding a lock ends, a job waiting
on that lock starts now, not at the workers' next poll."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
import sqlalchemy as sa
from procrastinate import App
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler.bodies import BODIES, RunContext
from agnt_jobs.scheduler.tasks import make_task
from agnt_jobs.settings import get_settings

JOBS = 5
# Far longer than the test waits: a job found only by a poll would fail it.
POLLING_SECONDS = 120.0


def _succeeded(engine: Engine) -> int:
    with engine.connect() as c:
        return int(
            c.execute(
                sa.text(
                    "SELECT count(*) FROM procrastinate_jobs "
                    "WHERE task_name = 'test_handover' AND status = 'succeeded'"
                )
            ).scalar_one()
        )


async def _drain_one_lock(
    app: App, engine: Engine, jobs: int, listen_notify: bool = True
) -> None:
    """Defer ``jobs`` no-op jobs on one lock and run a worker of two slots until
    they have succeeded (30 s at most)."""

    def body(ctx: RunContext) -> dict[str, int]:
        return {}

    BODIES["test_handover"] = body
    try:
        task = make_task(app, "test_handover", body, queue="test_handover")
        task.queueing_lock = None  # several waiting on the one lock
        async with app.open_async():
            for _ in range(jobs):
                await task.defer_async()
            worker = asyncio.create_task(
                app.run_worker_async(
                    # Its own queue: the schedules' jobs deferred meanwhile wake
                    # only the workers of theirs.
                    queues=["test_handover"],
                    concurrency=2,
                    listen_notify=listen_notify,
                    fetch_job_polling_interval=POLLING_SECONDS,
                    install_signal_handlers=False,
                )
            )
            try:
                deadline = time.monotonic() + 30
                while _succeeded(engine) < jobs and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
    finally:
        BODIES.pop("test_handover")
        app.tasks.pop("test_handover")


@pytest.mark.parametrize("listen_notify", [True, False], ids=["listening", "polling"])
async def test_jobs_on_one_lock_run_back_to_back_without_waiting_for_a_poll(
    app: App, engine: Engine, listen_notify: bool
) -> None:
    """Listening, the end's notification wakes the worker; not listening, the
    worker that ended the job looks again at once."""
    await _drain_one_lock(app, engine, JOBS, listen_notify)
    assert _succeeded(engine) == JOBS


async def test_the_claim_cooldown_does_not_hold_up_a_handover(
    app: App, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each claim of a job on a held lock comes back short (one job for two
    slots). With the cooldown at its largest, a handover made to wait it would
    take half a second or more; the handovers take none of it."""
    cooldown = 1.0
    monkeypatch.setenv("AGNT_WORKER_CLAIM_COOLDOWN_SECONDS", str(cooldown))
    get_settings.cache_clear()
    jobs = 8
    await _drain_one_lock(app, engine, jobs)
    with engine.connect() as c:
        first_start, last_end = c.execute(
            sa.text(
                "SELECT min(started_at), max(finished_at) FROM job_runs "
                "WHERE task_name = 'test_handover'"
            )
        ).one()
    assert _succeeded(engine) == jobs
    # Seven handovers: at least 3.5 s if each waited half the cooldown.
    assert (last_end - first_start).total_seconds() < (jobs - 1) * cooldown / 2
