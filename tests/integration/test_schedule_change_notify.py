"""A change of the schedules table reaches every running worker at once, through
the table's NOTIFY and each worker's LISTEN, not through the deferrer's periodic
backstop pass. Real workers (in this process, each with its own LISTEN connection)
on a real database; the schedule's next tick is hours away, so nothing but the
notification can wake a worker within the test's allowance."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from procrastinate import PsycopgConnector
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler import deploy, tasks
from agnt_jobs.scheduler.declaration import Schedule
from agnt_jobs.scheduler.deferrer import BACKSTOP_SECONDS
from agnt_jobs.scheduler.worker import AgntApp, AgntWorker
from agnt_jobs.settings import Settings
from tests.support.waiting import until

# A change is followed by every worker within this long (2 s, plus room for the
# machine's load); far less than the backstop, so the backstop cannot pass it.
FOLLOW_SECONDS = 3.0
assert FOLLOW_SECONDS < BACKSTOP_SECONDS / 2


def _hours_ahead(hours: int) -> str:
    """A daily cron (UTC) whose next tick is about ``hours`` hours from now."""
    return f"0 {(datetime.now(UTC).hour + hours) % 24} * * *"


def _follows(worker: AgntWorker, cron: str) -> bool:
    deferrer = worker._deferrer
    followed = deferrer.followed.get("far_sweep") if deferrer else None
    return followed is not None and followed.schedule.cron == cron


def _next_run_at(engine: Engine) -> datetime | None:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT next_run_at FROM schedules WHERE id = 'far_sweep'")
        ).scalar_one()


async def test_every_worker_follows_a_change_in_2_s_when_the_next_tick_is_hours_away(
    db_url: str, engine: Engine, env: Settings
) -> None:
    before, after = _hours_ahead(6), _hours_ahead(9)
    app = AgntApp(connector=PsycopgConnector(conninfo=db_url))
    tasks.make_task(app, "far_sweep", lambda ctx: {})
    deploy.register(app, [Schedule("far_sweep", before, "Far away.", zone="UTC")])
    async with app.open_async():
        await deploy.sync_table(app)
        workers = [
            AgntWorker(
                app=app,
                name=f"w{n}",
                queues=["nothing_here"],
                install_signal_handlers=False,
                update_heartbeat_interval=1,
            )
            for n in range(3)
        ]
        started = time.monotonic()
        running = [asyncio.create_task(worker.run()) for worker in workers]
        try:
            assert await until(
                lambda: all(_follows(w, before) for w in workers), FOLLOW_SECONDS * 2
            ), "the workers never made their first pass"
            # Each worker has passed once; its next pass is the backstop, at least
            # BACKSTOP_SECONDS after it started.
            with engine.begin() as connection:
                connection.execute(
                    sa.text("UPDATE schedules SET cron = :cron WHERE id = 'far_sweep'"),
                    {"cron": after},
                )
            changed = time.monotonic()
            expected = Schedule("far_sweep", after, "", zone="UTC").next_after(
                datetime.now(UTC)
            )
            followed = await until(
                lambda: (
                    all(_follows(w, after) for w in workers)
                    and _next_run_at(engine) == expected
                ),
                FOLLOW_SECONDS,
            )
            waited = time.monotonic() - changed
            # Were it late, the backstop could have been what made it: the test
            # proves nothing about the NOTIFY then, and says so.
            assert time.monotonic() - started < BACKSTOP_SECONDS, (
                "the machine was too slow for this test to tell the NOTIFY from "
                "the backstop pass"
            )
            assert followed, (
                f"after {waited:.1f} s: "
                f"{[w._deferrer.followed if w._deferrer else None for w in workers]}"
            )
        finally:
            for worker in workers:
                worker.stop()
            await asyncio.gather(*running, return_exceptions=True)
