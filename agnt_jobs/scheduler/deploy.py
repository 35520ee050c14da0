"""The deploy of the schedules: makes each declaration in ``periodic/`` a
Procrastinate periodic task evaluated in its own time zone, and declares them in the
``schedules`` table (the schedule registry) at each worker start. The table is the
schedule at runtime: the deferrer follows its effective values, which operators may
change (``agnt_jobs.scheduler.deferrer``).

A declaration whose job body is not registered (no ``@job`` for its id) stays
declared but gets no periodic task: it is never deferred, ``schedules list`` shows
it, ``schedules check`` fails on it, and each worker warns about it at start. Adding
the body later is only the import of its module in ``agnt_jobs/jobs/__init__.py``
(or ``cron/__init__.py``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import attr
import psycopg
from procrastinate import App, exceptions
from procrastinate.periodic import PeriodicTask

from agnt_jobs import logs
from agnt_jobs.db import queries
from agnt_jobs.scheduler import defer
from agnt_jobs.scheduler.declaration import Schedule
from agnt_jobs.settings import ConfigError

logger = logging.getLogger(__name__)

SQL = queries.load("scheduling.sql")


class ScheduledApp(App):
    """A Procrastinate App that knows every declared schedule, with or without a
    job body. ``agnt_jobs.scheduler.worker.ScheduledApp`` adds our worker to it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Every declared schedule by id.
        self.schedules: dict[str, Schedule] = {}


@attr.dataclass(frozen=True)
class ZonedPeriodicTask(PeriodicTask[..., Any, ...]):
    """Procrastinate's periodic task, plus the declaration it came from.

    Our deferrer reads ``schedule`` and evaluates it with our evaluator
    (``agnt_jobs.scheduler.cron``); Procrastinate's own deferrer, the only reader
    of its ``croniter``, is replaced by ours and never runs.
    """

    schedule: Schedule


def register(
    app: ScheduledApp, schedules: Iterable[Schedule], replace: bool = False
) -> None:
    """Declare ``schedules`` on ``app``; those with a job body become periodic tasks.

    The task of a job is created from its body (``agnt_jobs.scheduler.tasks``)
    before this runs; the schedule gives it its queue, so a manual defer lands on the
    same one.
    ``replace`` lets a test app redeclare a schedule (e.g. with a seconds cron).
    """
    for schedule in schedules:
        if schedule.id in app.schedules and not replace:
            raise exceptions.TaskAlreadyRegistered(
                f"schedule {schedule.id!r} is declared twice"
            )
        app.schedules[schedule.id] = schedule
        task = app.tasks.get(schedule.id)
        key = (schedule.id, schedule.id)
        app.periodic_registry.periodic_tasks.pop(key, None)
        if task is None:
            continue
        task.queue = schedule.queue
        app.periodic_registry.periodic_tasks[key] = ZonedPeriodicTask(
            task=task,
            cron=schedule.cron,
            periodic_id=schedule.id,
            configure_kwargs={},
            schedule=schedule,
        )


def missing_bodies(app: ScheduledApp) -> list[str]:
    """Declared schedules with no job body in this deployment, in declaration order."""
    return [id_ for id_ in app.schedules if id_ not in app.tasks]


def deployed(app: ScheduledApp) -> dict[str, dict[str, str]]:
    """What this deployment defers: {id: signature} of the schedules with a body."""
    return {
        periodic_task.periodic_id: periodic_task.schedule.signature()
        for periodic_task in app.periodic_registry.periodic_tasks.values()
        if isinstance(periodic_task, ZonedPeriodicTask)
    }


def _table_rows(app: ScheduledApp, now: datetime) -> dict[str, list[Any]]:
    schedules = list(app.schedules.values())
    return {
        "ids": [s.id for s in schedules],
        "crons": [s.cron for s in schedules],
        "zones": [s.zone for s in schedules],
        "queues": [s.queue for s in schedules],
        "policies": [str(s.misfire) for s in schedules],
        "timeouts": [s.timeout for s in schedules],
        "descriptions": [s.description for s in schedules],
        "has_body": [s.id in app.tasks for s in schedules],
        "next_run_at": [s.next_after(now) for s in schedules],
    }


async def sync_table(app: ScheduledApp) -> list[str]:
    """Declare every schedule of the code in the table (an operator's changes
    stand) and mark the ones the code dropped; return the ids newly marked
    removed. Run by each worker at start."""
    rows = _table_rows(app, datetime.now(UTC))
    try:
        removed = await app.connector.execute_query_all_async(
            SQL["declare_schedules"], **rows
        )
        # The jobs too, so that agnt_defer knows them (scheduler/defer.py).
        await app.connector.execute_query_all_async(
            defer.SQL["declare_jobs"], jobs=json.dumps(defer.job_declarations(app))
        )
    except exceptions.ConnectorException as error:
        if isinstance(
            error.__cause__,
            psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction,
        ):
            raise ConfigError(
                "the database's schema is behind the code "
                f"({error.__cause__.diag.message_primary}): run 'agnt-jobs db upgrade'"
            ) from None
        if isinstance(error.__cause__, psycopg.errors.CheckViolation):
            # The declaration check and Postgres's are meant to be one; should
            # they ever differ, the worker stops with Postgres's reason.
            reason = str(error.__cause__).strip().splitlines()[0]
            raise ConfigError(
                f"the database refuses a declared schedule: {reason}: fix its "
                "declaration in periodic/"
            ) from None
        raise
    removed_ids = sorted(row["id"] for row in removed)
    missing = missing_bodies(app)
    logger.info(
        f"{len(rows['ids'])} schedules declared, "
        f"{len(app.periodic_registry.periodic_tasks)} deferred by this worker",
        extra=logs.event("schedules_synced", declared=len(rows["ids"])),
    )
    if missing:
        logger.warning(
            f"{len(missing)} declared schedules have no job body and will not run: "
            + ", ".join(missing),
            extra=logs.event("schedule_body_missing", schedules=missing),
        )
    if removed_ids:
        logger.warning(
            "schedules in the database but no longer declared, marked removed: "
            + ", ".join(removed_ids),
            extra=logs.event("schedule_removed", schedules=removed_ids),
        )
    return removed_ids
