"""Which schedules missed a tick: for each schedule we expect, its latest tick that
is older than a grace period, against the latest tick Procrastinate actually
deferred for it (``procrastinate_periodic_defers``, which keeps the last defer of
each periodic task).

What we expect comes from a *schedule source*, a function ``(connection, now) ->
[ExpectedSchedule]``. The default reads the App's Procrastinate periodic registry
(stock Procrastinate 3.x evaluates cron in UTC). The schedule registry (issue 3:
``periodic/`` and its ``schedules`` table, crons in WITA, pausable) replaces it by
assigning ``schedule_source`` a function that reads that table and leaves out
paused schedules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from croniter import croniter
from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class ExpectedSchedule:
    """A schedule that should be deferring ticks.

    ``periodic_id`` None matches any periodic id of the task. ``since`` is when the
    schedule was deployed: ticks before it are not expected, and a schedule with
    no defer at all is late only once a tick after ``since`` is overdue (without
    ``since``, a never-deferred schedule is reported as such but not late: a fresh
    deploy of a daily job has simply not reached its first tick).
    """

    task_name: str
    cron: str
    zone: str = "UTC"
    periodic_id: str | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class ScheduleTicks:
    task_name: str
    expected_tick: datetime
    last_deferred: datetime | None
    late: bool


ScheduleSource = Callable[[Connection, datetime], Sequence[ExpectedSchedule]]

LAST_DEFERS = sa.text(
    """
    SELECT task_name, periodic_id, max(defer_timestamp) AS last
    FROM procrastinate_periodic_defers
    WHERE task_name = ANY(:names)
    GROUP BY task_name, periodic_id
    """
)


def procrastinate_registry_source(
    connection: Connection, now: datetime
) -> list[ExpectedSchedule]:
    """Every periodic task registered on the App, as stock Procrastinate runs it."""
    from agnt_jobs.app import app

    return [
        ExpectedSchedule(task.task.name, task.cron, "UTC", task.periodic_id)
        for task in app.periodic_registry.periodic_tasks.values()
    ]


# The integrator points this at the schedule registry's source once it lands.
schedule_source: ScheduleSource = procrastinate_registry_source


def latest_tick(cron: str, zone: str, at_or_before: datetime) -> datetime:
    """The latest tick of ``cron``, read in ``zone``, at or before the instant."""
    local = at_or_before.astimezone(ZoneInfo(zone)) + timedelta(seconds=1)
    return croniter(cron, local).get_prev(datetime).astimezone(UTC)


def evaluate(
    connection: Connection,
    now: datetime,
    schedules: Sequence[ExpectedSchedule],
    grace: timedelta,
) -> list[ScheduleTicks]:
    """Each schedule's latest tick due before ``now - grace`` against its last defer."""
    if not schedules:
        return []
    last: dict[tuple[str, str], int] = {
        (row.task_name, row.periodic_id): row.last
        for row in connection.execute(
            LAST_DEFERS, {"names": sorted({s.task_name for s in schedules})}
        )
    }
    result = []
    for schedule in schedules:
        expected = latest_tick(schedule.cron, schedule.zone, now - grace)
        stamps = [
            stamp
            for (task, periodic), stamp in last.items()
            if task == schedule.task_name
            and schedule.periodic_id in (None, periodic)
            and stamp is not None
        ]
        deferred = datetime.fromtimestamp(max(stamps), UTC) if stamps else None
        if schedule.since is not None and expected < schedule.since:
            late = False
        elif deferred is None:
            late = schedule.since is not None
        else:
            late = deferred < expected
        result.append(ScheduleTicks(schedule.task_name, expected, deferred, late))
    return result
