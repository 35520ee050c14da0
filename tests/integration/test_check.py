"""``schedules check`` logic against a real database: a cron changed here but not in
the database, a live worker that deployed other schedules, a dropped schedule."""

from __future__ import annotations

import sqlalchemy as sa
from procrastinate import PsycopgConnector
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler import control, deploy, tasks
from agnt_jobs.scheduler.declaration import Schedule
from agnt_jobs.scheduler.worker import AgntApp
from agnt_jobs.settings import Settings

SWEEP = Schedule("sweep", "*/15 * * * *", "Sweep.")


def _app(db_url: str, cron: str) -> AgntApp:
    app = AgntApp(connector=PsycopgConnector(conninfo=db_url))
    tasks.make_task(app, SWEEP.id, lambda ctx: {})
    deploy.register(app, [Schedule(SWEEP.id, cron, SWEEP.description)])
    return app


async def test_a_change_not_deployed_everywhere_is_reported(
    db_url: str, engine: Engine, env: Settings
) -> None:
    old = _app(db_url, "*/15 * * * *")
    async with old.open_async():
        # A worker of the old code: it synced the table and records its schedules.
        await deploy.sync_table(old)
        worker_id = await old.job_manager.register_worker()
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO schedule_workers (worker_id, hostname, pid, deployed) "
                "VALUES (:w, 'old-host', 42, CAST(:d AS jsonb))"
            ),
            {"w": worker_id, "d": '{"sweep": {"cron": "*/15 * * * *"}}'},
        )
    assert control.check(old, engine, env) == [
        control.Problem(
            "stale_worker",
            None,
            f"worker {worker_id} (old-host pid 42) deployed different schedules: sweep",
        )
    ]

    new = _app(db_url, "*/10 * * * *")
    problems = control.check(new, engine, env)
    assert [(p.kind, p.schedule_id) for p in problems] == [
        ("changed", "sweep"),
        ("stale_worker", None),
    ]
    assert problems[0].message == (
        "sweep: cron is '*/10 * * * *' here but '*/15 * * * *' in the database "
        "(last worker start)"
    )


async def test_a_dropped_schedule_and_a_missing_body_are_reported(
    db_url: str, engine: Engine, env: Settings
) -> None:
    app = _app(db_url, SWEEP.cron)
    deploy.register(app, [Schedule("bodiless", "0 1 * * *", "No body yet.")])
    async with app.open_async():
        await deploy.sync_table(app)
    dropped = AgntApp(connector=PsycopgConnector(conninfo=db_url))
    deploy.register(dropped, [Schedule("bodiless", "0 1 * * *", "No body yet.")])
    kinds = [(p.kind, p.schedule_id) for p in control.check(dropped, engine, env)]
    assert kinds == [("no_body", "bodiless"), ("dropped", "sweep")]
