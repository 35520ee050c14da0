"""What the schedule page and the queues page show, read from the job database:
one schedule with its settings, next runs, figures over 24 hours and 7 days and
its recent durations; the queues (the same figures as ``GET /metrics``) and the
workers, live, silent and gone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agnt_jobs.admin import schemas
from agnt_jobs.admin.context import AdminContext
from agnt_jobs.admin.read.schedules import registry
from agnt_jobs.db import queries
from agnt_jobs.errors import Invalid, NotFound
from agnt_jobs.scheduler import schedule_control

SQL = queries.load("admin.sql")
# The queues page shows the same figures as GET /metrics: its query.
QUEUES = queries.load("metrics.sql")["queues"]

CHART_RUNS = 60


@dataclass(frozen=True)
class Window:
    """A job's runs that started within one window."""

    label: str
    ended: int
    succeeded: int
    running: int
    p50_seconds: float | None
    p95_seconds: float | None

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.ended if self.ended else None


@dataclass(frozen=True)
class SchedulePage:
    entry: schemas.ScheduleEntry
    row: dict[str, Any]
    next_runs: list[datetime]
    windows: list[Window]
    recent: list[dict[str, Any]]
    waiting: list[dict[str, Any]]


def schedule_page(ctx: AdminContext, schedule_id: str, now: datetime) -> SchedulePage:
    """NotFound when neither the code nor the table has it."""
    entries = {entry.id: entry for entry in registry(ctx, now).schedules}
    entry = entries.get(schedule_id)
    with ctx.engine.connect() as connection:
        found = connection.exec_driver_sql(
            SQL["schedule_row"], {"id": schedule_id}
        ).first()
        if entry is None or found is None:
            raise NotFound(f"no schedule {schedule_id!r}")
        row = dict(found._mapping)
        windows = [
            Window(**{k: v for k, v in r._mapping.items()})
            for r in connection.exec_driver_sql(
                SQL["schedule_stats"], {"job": row["task_name"]}
            )
        ]
        recent = [
            dict(r._mapping)
            for r in connection.exec_driver_sql(
                SQL["recent_durations"], {"job": row["task_name"], "limit": CHART_RUNS}
            )
        ]
        waiting = [
            dict(r._mapping)
            for r in connection.exec_driver_sql(
                SQL["waiting_runs"], {"job": row["task_name"]}
            )
        ]
    try:
        upcoming = schedule_control.next_runs(row, now)
    except Invalid:
        upcoming = []
    return SchedulePage(
        entry=entry,
        row=row,
        next_runs=upcoming,
        windows=windows,
        recent=recent,
        waiting=waiting,
    )


@dataclass(frozen=True)
class QueuesPage:
    queues: list[dict[str, Any]]
    workers: list[dict[str, Any]]
    gone: list[dict[str, Any]]
    stalled_seconds: float

    def silent(self, worker: dict[str, Any]) -> bool:
        return bool(worker["heartbeat_age"] > self.stalled_seconds)


def queues_page(ctx: AdminContext) -> QueuesPage:
    parameters = {"stalled_seconds": ctx.settings.stalled_worker_seconds}
    with ctx.engine.connect() as connection:
        queues = [
            dict(r._mapping) for r in connection.exec_driver_sql(QUEUES, parameters)
        ]
        workers = [dict(r._mapping) for r in connection.exec_driver_sql(SQL["workers"])]
        gone = [
            dict(r._mapping) for r in connection.exec_driver_sql(SQL["gone_workers"])
        ]
    return QueuesPage(
        queues=queues,
        workers=workers,
        gone=gone,
        stalled_seconds=ctx.settings.stalled_worker_seconds,
    )
