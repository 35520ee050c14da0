"""Building blocks of the admin view's tests: a small App of our own with job bodies
that succeed and fail, a worker run that drains the queue (as the App's worker runs
jobs, history middleware included), and the token."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from procrastinate import App, PsycopgConnector
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler import deploy, tasks
from agnt_jobs.scheduler.bodies import JobResult, RunContext
from agnt_jobs.scheduler.declaration import Misfire, Schedule
from agnt_jobs.scheduler.history import record_run
from agnt_jobs.scheduler.worker import AgntApp

TOKEN = "adm-7Hq2-wxY9-test-token-at-least-32-characters"
HEADERS = {"X-Internal-Token": TOKEN}

TIDY = Schedule("tidy", "*/5 * * * *", "Tidy up every five minutes.")
EXPLODE = Schedule(
    "explode", "0 3 * * *", "Fails every night.", misfire=Misfire.CATCH_UP
)
NIGHTLY = Schedule("nightly", "0 2 * * *", "Each night.")
HALTED = Schedule("halted", "0 4 * * *", "Paused by an operator.")
SKIPPED = Schedule("skipped", "*/15 * * * *", "Its workers were down.")
STALLED = Schedule("stalled", "0 6 * * *", "Every worker is down.")
TARDY = Schedule("tardy", "*/10 * * * *", "Deferred late.")
BODILESS = Schedule("bodiless", "0 1 * * *", "Declared, no body yet.")


def tidy(ctx: RunContext) -> JobResult:
    return {"tidied": 3}


def explode(ctx: RunContext) -> JobResult:
    raise RuntimeError("venue gateway said no")


def make_app(
    db_url: str, schedules: Iterable[Schedule], failing: Iterable[str] = ()
) -> AgntApp:
    """An App declaring ``schedules``; each gets a body (``explode`` for the ids in
    ``failing``, else ``tidy``) except ``bodiless``. The worker records history."""
    app = AgntApp(
        connector=PsycopgConnector(conninfo=db_url),
        worker_defaults={"worker_middleware": [record_run]},
    )
    failing = set(failing)
    schedules = list(schedules)
    for schedule in schedules:
        if schedule.id != BODILESS.id:
            body = explode if schedule.id in failing else tidy
            tasks.make_task(app, schedule.id, body, queue=schedule.queue)
    deploy.register(app, schedules)
    return app


async def drain(app: App) -> None:
    """Run every waiting job with a real worker, then stop. The worker syncs the
    schedules table at start as every worker does; its deferrer is left out so
    that only the jobs a test deferred run."""
    registered = dict(app.periodic_registry.periodic_tasks)
    app.periodic_registry.periodic_tasks.clear()
    try:
        async with app.open_async():
            await app.run_worker_async(wait=False, install_signal_handlers=False)
    finally:
        app.periodic_registry.periodic_tasks.update(registered)


def defer_tick(engine: Engine, schedule: Schedule, tick: datetime) -> str:
    """Decide ``tick`` of ``schedule`` now, with the SQL function every worker's
    deferrer calls; its outcome."""
    with engine.begin() as connection:
        return connection.execute(
            sa.text(
                "SELECT outcome FROM agnt_defer_schedule_tick(:id, :id, :cron, :zone, "
                ":queue, :id, :id, 0, :tick, false, NULL)"
            ),
            {
                "id": schedule.id,
                "cron": schedule.cron,
                "zone": schedule.zone,
                "queue": schedule.queue,
                "tick": int(tick.timestamp()),
            },
        ).scalar_one()


def record_missed(engine: Engine, schedule: Schedule, first: datetime, last: datetime):
    with engine.begin() as connection:
        connection.execute(
            sa.text("SELECT agnt_record_missed_ticks(:id, :first, :last, NULL)"),
            {
                "id": schedule.id,
                "first": int(first.timestamp()),
                "last": int(last.timestamp()),
            },
        )
