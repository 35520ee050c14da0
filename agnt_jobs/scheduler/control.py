"""What operators do with schedules: see them with their state, check the deployed
code against the database, pause, resume, run a job now. The CLI (and the admin
view) are thin layers over these functions.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from procrastinate import exceptions
from procrastinate.jobs import JobDeferrer
from procrastinate.manager import JobManager
from procrastinate.sync_psycopg_connector import SyncPsycopgConnector
from procrastinate.tasks import Task
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler import registry
from agnt_jobs.scheduler.bodies import (
    NotConfigured as NotConfigured,  # raised by run_now; callers catch it from here
)
from agnt_jobs.scheduler.bodies import missing_settings, require_configured
from agnt_jobs.scheduler.registry import SQL
from agnt_jobs.scheduler.worker import AgntApp
from agnt_jobs.settings import Settings

FINAL_STATUSES = ("succeeded", "failed", "cancelled", "aborted")


class UnknownId(LookupError):
    """An id that is not declared (or has no job body where one is needed)."""


class AlreadyWaiting(Exception):
    def __init__(self, job_name: str, job_id: int | None) -> None:
        super().__init__(f"{job_name} already has a run waiting (job {job_id})")
        self.job_name, self.job_id = job_name, job_id


@dataclass(frozen=True)
class ScheduleState:
    """One schedule as the code declares it, with the database's view when there is
    one. ``in_code`` is False for a schedule only the database still knows."""

    id: str
    description: str
    cron: str
    zone: str
    queue: str
    misfire_policy: str
    in_code: bool
    has_body: bool
    next_run_at: datetime | None
    enabled: bool | None = None
    removed_at: datetime | None = None
    last_tick_at: datetime | None = None
    last_tick_outcome: str | None = None
    last_run_status: str | None = None
    last_run_started_at: datetime | None = None
    last_run_finished_at: datetime | None = None
    # Environment variables its job needs that are unset (it is not configured).
    missing_settings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in asdict(self).items()
        }


def database_rows(engine: Engine) -> dict[str, dict[str, Any]]:
    """``schedule_overview`` by schedule id."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(SQL["overview"]).mappings().all()
    return {row["id"]: dict(row) for row in rows}


def states(
    app: AgntApp,
    now: datetime,
    rows: dict[str, dict[str, Any]] | None,
    settings: Settings,
) -> list[ScheduleState]:
    """Every declared schedule in declaration order, then those only the database
    knows; next runs are computed from ``now`` in each schedule's zone, and what a
    job waits for from ``settings``."""
    rows = rows or {}
    result = []
    for schedule in app.schedules.values():
        row = rows.get(schedule.id, {})
        result.append(
            ScheduleState(
                id=schedule.id,
                description=schedule.description,
                cron=schedule.cron,
                zone=schedule.zone,
                queue=schedule.queue,
                misfire_policy=str(schedule.misfire),
                in_code=True,
                has_body=schedule.id in app.tasks,
                next_run_at=schedule.next_after(now),
                missing_settings=missing_settings(schedule.id, settings),
                **_database_part(row),
            )
        )
    for id_, row in sorted(rows.items()):
        if id_ not in app.schedules:
            result.append(
                ScheduleState(
                    id=id_,
                    description=row["description"],
                    cron=row["cron"],
                    zone=row["zone"],
                    queue=row["queue"],
                    misfire_policy=row["misfire_policy"],
                    in_code=False,
                    has_body=False,
                    next_run_at=None,
                    **_database_part(row),
                )
            )
    return result


def _database_part(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "enabled",
        "removed_at",
        "last_tick_at",
        "last_tick_outcome",
        "last_run_status",
        "last_run_started_at",
        "last_run_finished_at",
    )
    return {key: row.get(key) for key in keys}


@dataclass(frozen=True)
class Problem:
    kind: str  # no_body, not_deployed, changed, dropped, stale_worker
    schedule_id: str | None
    message: str


def check(app: AgntApp, engine: Engine, settings: Settings) -> list[Problem]:
    """Where the deployed code and the database disagree. Empty: all is well."""
    problems = [
        Problem(
            "no_body",
            id_,
            f"{id_} is declared in periodic/ but no @job body is registered: "
            "it never runs",
        )
        for id_ in registry.missing_bodies(app)
    ]
    rows = database_rows(engine)
    for schedule in app.schedules.values():
        row = rows.get(schedule.id)
        if row is None:
            problems.append(
                Problem(
                    "not_deployed",
                    schedule.id,
                    f"{schedule.id} is declared here but no worker with this code "
                    "has started yet",
                )
            )
            continue
        database = {
            "cron": row["cron"],
            "zone": row["zone"],
            "queue": row["queue"],
            "misfire": row["misfire_policy"],
        }
        for name, code_value in schedule.signature().items():
            if database[name] != code_value:
                problems.append(
                    Problem(
                        "changed",
                        schedule.id,
                        f"{schedule.id}: {name} is {code_value!r} here but "
                        f"{database[name]!r} in the database (last worker start)",
                    )
                )
    for id_, row in sorted(rows.items()):
        if id_ not in app.schedules and row["removed_at"] is None:
            problems.append(
                Problem(
                    "dropped",
                    id_,
                    f"{id_} is active in the database (first seen "
                    f"{row['first_seen']:%Y-%m-%d}) but this code does not declare it",
                )
            )
    problems.extend(_stale_workers(app, engine, settings))
    return problems


def _stale_workers(app: AgntApp, engine: Engine, settings: Settings) -> list[Problem]:
    ours = registry.deployed(app)
    with engine.connect() as connection:
        workers = (
            connection.exec_driver_sql(
                SQL["live_workers"],
                {"stalled_seconds": settings.stalled_worker_seconds},
            )
            .mappings()
            .all()
        )
    problems = []
    for worker in workers:
        theirs = worker["deployed"]
        differing = sorted(
            id_ for id_ in set(ours) | set(theirs) if ours.get(id_) != theirs.get(id_)
        )
        if differing:
            problems.append(
                Problem(
                    "stale_worker",
                    None,
                    f"worker {worker['worker_id']} ({worker['hostname']} pid "
                    f"{worker['pid']}) defers a different registry: "
                    + ", ".join(differing),
                )
            )
    return problems


def declared(app: AgntApp, id_: str) -> None:
    if id_ not in app.schedules:
        raise UnknownId(
            f"unknown schedule {id_!r}: 'agnt-jobs schedules list' shows them all"
        )


def set_enabled(app: AgntApp, engine: Engine, id_: str, enabled: bool) -> None:
    """Pause (``enabled=False``) or resume a declared schedule. Every worker sees it
    at the schedule's next tick; a paused tick is recorded as skipped."""
    declared(app, id_)
    schedule = app.schedules[id_]
    with engine.begin() as connection:
        connection.exec_driver_sql(
            SQL["set_enabled"],
            {
                "id": id_,
                "task": id_,
                "cron": schedule.cron,
                "zone": schedule.zone,
                "queue": schedule.queue,
                "policy": str(schedule.misfire),
                "description": schedule.description,
                "has_body": id_ in app.tasks,
                "enabled": enabled,
            },
        )


def job_task(app: AgntApp, name: str) -> Task:
    """The task of a job that can run here, or UnknownId saying why not."""
    task = app.tasks.get(name)
    if task is not None:
        return task
    if name in app.schedules:
        raise UnknownId(f"{name} is declared but has no job body in this deployment")
    raise UnknownId(f"unknown job {name!r}: 'agnt-jobs schedules list' shows them all")


# Defers on a connection the caller gives it, never through a pool of its own: the
# App's connector may be closed (the CLI), or open on another event loop (a web
# backend that mounts the admin view), and opening and closing the App around each
# call would race between the admin's request threads.
_ON_CONNECTION = JobManager(SyncPsycopgConnector())


def run_now(app: AgntApp, engine: Engine, settings: Settings, name: str) -> int:
    """Defer a run of job ``name`` now (its tick is now); its job id. Raises
    AlreadyWaiting when one already waits (the queueing lock), NotConfigured when
    a setting it needs is unset (it would only fail).

    The job is inserted in a transaction of ``engine``, so this is safe from any
    thread, whatever state the App's own connector is in."""
    task = job_task(app, name)
    require_configured(name, settings)
    job = task.configure().job
    try:
        with engine.begin() as connection:
            driver = connection.connection.driver_connection
            return JobDeferrer(_ON_CONNECTION, job, connection=driver).defer()
    except exceptions.AlreadyEnqueued:
        with engine.connect() as connection:
            job_id = connection.exec_driver_sql(
                SQL["waiting_job"], {"queueing_lock": task.queueing_lock}
            ).scalar()
        raise AlreadyWaiting(name, job_id) from None


def job_state(engine: Engine, job_id: int) -> dict[str, Any] | None:
    with engine.connect() as connection:
        row = (
            connection.exec_driver_sql(SQL["job_state"], {"job_id": job_id})
            .mappings()
            .first()
        )
    return dict(row) if row else None


def wait_for(
    engine: Engine, job_id: int, timeout: float | None, poll: float = 0.2
) -> dict[str, Any]:
    """Poll a job until it ends (or ``timeout`` seconds pass); its last state."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        state = job_state(engine, job_id) or {"status": "deleted"}
        if state["status"] in (*FINAL_STATUSES, "deleted"):
            return state
        if deadline is not None and time.monotonic() > deadline:
            return state
        time.sleep(poll)
