"""Driving the schedule registry in tests: an app of the test's own with chosen
schedules (job bodies that do nothing), and a worker's start of the waiting runs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable

import sqlalchemy as sa
from procrastinate import PsycopgConnector
from procrastinate import jobs as jobs_module

from agnt_jobs.scheduler import deploy, tasks
from agnt_jobs.scheduler.declaration import Schedule
from agnt_jobs.scheduler.worker import AgntApp


@contextlib.asynccontextmanager
async def registry_app(
    db_url: str, schedules: Iterable[Schedule]
) -> AsyncIterator[AgntApp]:
    """An open app declaring ``schedules``, each with a body, synced to the
    schedules table as a starting worker does."""
    app = AgntApp(connector=PsycopgConnector(conninfo=db_url))
    schedules = list(schedules)
    for schedule in schedules:
        tasks.make_task(app, schedule.id, lambda ctx: {})
    deploy.register(app, schedules)
    async with app.open_async():
        await deploy.sync_table(app)
        yield app


async def finish_waiting(app: AgntApp) -> None:
    """What a worker does to the waiting jobs: start them (and end them)."""
    worker_id = await app.job_manager.register_worker()
    while job := await app.job_manager.fetch_job(queues=None, worker_id=worker_id):
        await app.job_manager.finish_job(
            job, status=jobs_module.Status.SUCCEEDED, delete_job=False
        )


def declare_earlier(
    connection: sa.Connection, id_: str, cron: str = "0 1 * * *", description: str = ""
) -> None:
    """A schedules row as an earlier deploy declared it (one this code may not
    declare): inserted with the deploy's source, as only a deploy may."""
    connection.execute(sa.text("SET LOCAL agnt.change_source = 'deploy'"))
    connection.execute(
        sa.text(
            "INSERT INTO schedules (id, task_name, cron, description, declared, "
            "declared_cron, declared_zone, declared_misfire_policy, declared_timeout) "
            "VALUES (:id, :id, :cron, :description, true, :cron, 'Asia/Makassar', "
            "'skip', '01:00:00')"
        ),
        {"id": id_, "cron": cron, "description": description},
    )
    connection.execute(sa.text("SET LOCAL agnt.change_source = ''"))
