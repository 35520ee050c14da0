"""The claim cooldown: every job's notification wakes every listening worker, so a
worker whose claim found nothing waits ``AGNT_WORKER_CLAIM_COOLDOWN_SECONDS``
(half to all of it) before it claims again, and the notifications that arrive
meanwhile make one claim. A real worker, its real claims; only their number is
counted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from procrastinate import App
from procrastinate.manager import get_channel_for_queues
from sqlalchemy.engine import Engine

from agnt_jobs import settings
from agnt_jobs.scheduler.bodies import BODIES, RunContext
from agnt_jobs.scheduler.tasks import make_task
from agnt_jobs.scheduler.worker import AgntWorker

QUEUE = "test_cooldown"
NOTIFICATIONS = 40
SPACING_SECONDS = 0.01


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The size of what each of the worker's claims took, in order."""
    taken: list[int] = []
    claim: Callable[[AgntWorker, int], Awaitable[list[dict[str, Any]]]]
    claim = AgntWorker._claim

    async def counted(worker: AgntWorker, n: int) -> list[dict[str, Any]]:
        rows = await claim(worker, n)
        taken.append(len(rows))
        return rows

    monkeypatch.setattr(AgntWorker, "_claim", counted)
    yield taken


def _notify(db_url: str, count: int, spacing: float) -> None:
    """``count`` new-job notifications on the queue's channel, one a transaction,
    as jobs deferred one at a time send them (no job behind them)."""
    (channel,) = get_channel_for_queues(queues=[QUEUE])
    payload = json.dumps({"type": "job_inserted", "job_id": 0})
    with psycopg.connect(db_url, autocommit=True) as connection:
        for _ in range(count):
            connection.execute("SELECT pg_notify(%s, %s)", (channel, payload))
            time.sleep(spacing)


async def _until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("cooldown", [0.2, 0.0])
async def test_an_idle_worker_claims_a_bounded_number_of_times_for_a_burst(
    app: App,
    engine: Engine,
    db_url: str,
    claims: list[int],
    monkeypatch: pytest.MonkeyPatch,
    cooldown: float,
) -> None:
    """One job deferred, then forty notifications 10 ms apart, to an idle worker of
    two slots: with a cooldown it claims a few times (the job runs once, at the
    first); with none it claims at nearly every notification, all but one claim
    empty."""
    monkeypatch.setenv("AGNT_WORKER_CLAIM_COOLDOWN_SECONDS", str(cooldown))
    settings.get_settings.cache_clear()

    def body(ctx: RunContext) -> dict[str, int]:
        return {}

    BODIES["test_cooldown"] = body
    try:
        task = make_task(app, "test_cooldown", body, queue=QUEUE)
        task.queueing_lock = None
        task.lock = None
        async with app.open_async():
            worker = asyncio.create_task(
                app.run_worker_async(
                    queues=[QUEUE],
                    concurrency=2,
                    wait=True,
                    install_signal_handlers=False,
                    fetch_job_polling_interval=60,
                )
            )
            try:
                # Its first claim (at start) finds nothing; then it listens.
                await _until(lambda: len(claims) >= 1)
                while True:
                    heard = len(claims) + 1
                    await asyncio.to_thread(_notify, db_url, 1, 0)
                    with contextlib.suppress(AssertionError):
                        await _until(lambda n=heard: len(claims) >= n, timeout=0.5)
                        break
                await asyncio.sleep(cooldown + 0.1)

                before = len(claims)
                sent = time.monotonic()
                await task.defer_async()
                await asyncio.to_thread(
                    _notify, db_url, NOTIFICATIONS - 1, SPACING_SECONDS
                )
                span = time.monotonic() - sent
                await _until(lambda: sum(claims[before:]) == 1)
                await asyncio.sleep(cooldown + 0.2)
                made = claims[before:]
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
    finally:
        BODIES.pop("test_cooldown")
        app.tasks.pop("test_cooldown")

    with engine.connect() as connection:
        runs = connection.execute(
            sa.text("SELECT count(*) FROM job_runs WHERE task_name = 'test_cooldown'")
        ).scalar_one()
    assert runs == 1
    assert sum(made) == 1
    if cooldown:
        # At most one claim per half cooldown, plus the claim the first
        # notification makes and one for the notifications left at the end.
        assert len(made) <= span / (cooldown / 2) + 2, made
    else:
        assert len(made) >= NOTIFICATIONS / 2, made
