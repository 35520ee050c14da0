"""Which schedules no worker can follow, and why: one answer for the deferrer,
``schedules check``, the pages, ``/metrics`` and the health monitor.

A ``schedules`` row is read through the view ``schedule_rows`` (docs/schema.sql),
where a value no reader can use is NULL, ``problem`` says what Postgres finds
wrong with the row, and ``fault`` what a worker that set the schedule aside found.
What only this Python can tell (a zone its time-zone database lacks, a cron its
evaluator cannot follow) is found here, by building the schedule and computing
its ticks. A broken schedule alone stops ticking; every other one ticks on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from agnt_jobs.scheduler.declaration import Schedule


class Broken(ValueError):
    """A schedule no worker can follow; the message says why, in one line."""


def follow(row: Mapping[str, Any], now: datetime) -> Schedule:
    """The schedule a ``schedule_rows`` row says is in effect, its ticks computable
    around ``now``; Broken if no worker can follow it."""
    if row.get("problem"):
        raise Broken(row["problem"])
    try:
        schedule = Schedule.from_row(row)
    except Exception as error:  # whatever the row holds, it is this row's fault
        raise Broken(one_line(error)) from None
    try:
        schedule.latest_at(now)
        schedule.next_after(now)
    except Exception as error:  # the evaluator cannot follow this cron here
        raise Broken(
            f"schedules.cron {schedule.cron!r} in {schedule.zone}: its ticks cannot "
            f"be computed ({one_line(error)})"
        ) from None
    return schedule


def problem(row: Mapping[str, Any], now: datetime) -> str | None:
    """Why the schedule of a live ``schedule_rows`` row is broken, or None:
    Postgres's reason, else a worker's, else this Python's."""
    if row.get("fault"):
        return str(row.get("problem") or row["fault"])
    try:
        follow(row, now)
    except Broken as error:
        return str(error)
    return None


def one_line(error: BaseException) -> str:
    """An error in one line, for a log line or a check's line."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
