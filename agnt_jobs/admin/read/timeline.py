"""What the page draws besides the registry: each job's runs over the last 24 hours
as bars on a time axis, and the newest failures.

Runs are counted per job in 15-minute buckets by the database, and neighbouring
buckets of the same outcome are drawn as one bar, so a job that runs every minute
is a few bars, not 1,440.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import RowMapping

from agnt_jobs.admin.context import AdminContext
from agnt_jobs.db import queries

SQL = queries.load("admin.sql")
WINDOW = timedelta(hours=24)
BUCKET = timedelta(minutes=15)
# The narrowest bar, in percent of the axis: a single short run stays visible.
MIN_WIDTH = 0.35


@dataclass
class Bar:
    start: datetime
    end: datetime
    outcome: str  # succeeded, failed, aborted, running: the worst in the bar
    runs: int = 0
    failed: int = 0
    aborted: int = 0

    def left(self, since: datetime) -> float:
        return round((self.start - since) / WINDOW * 100, 3)

    def width(self) -> float:
        return round(max((self.end - self.start) / WINDOW * 100, MIN_WIDTH), 3)

    def title(self, zone: ZoneInfo) -> str:
        span = f"{self.start.astimezone(zone):%H:%M}-{self.end.astimezone(zone):%H:%M}"
        counts = f"{self.runs} run{'s' if self.runs != 1 else ''}"
        if self.failed:
            counts += f", {self.failed} failed"
        if self.aborted:
            counts += f", {self.aborted} aborted"
        return f"{span}: {counts}"


@dataclass(frozen=True)
class Timeline:
    since: datetime
    until: datetime
    bars: dict[str, list[Bar]]

    def hours(self, zone: ZoneInfo, step: int = 3) -> list[tuple[float, str]]:
        """Axis labels: every ``step`` hours of WITA wall clock, as (left %, HH:00)."""
        local = self.since.astimezone(zone)
        first = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        labels = []
        at = first
        while at < self.until:
            if at.hour % step == 0:
                left = round((at - self.since) / WINDOW * 100, 3)
                labels.append((left, f"{at:%H:00}"))
            at += timedelta(hours=1)
        return labels


def _outcome(row: RowMapping) -> str:
    if row["failed"]:
        return "failed"
    if row["aborted"]:
        return "aborted"
    if row["running"]:
        return "running"
    return "succeeded"


def timeline(ctx: AdminContext, now: datetime) -> Timeline:
    since = now - WINDOW
    params = {
        "since": since,
        "until": now,
        "bucket_seconds": BUCKET.total_seconds(),
    }
    with ctx.engine.connect() as connection:
        rows = connection.exec_driver_sql(SQL["timeline"], params).mappings().all()
    bars: dict[str, list[Bar]] = {}
    for row in rows:
        start, outcome = row["bucket"], _outcome(row)
        end = min(start + BUCKET, now)
        job_bars = bars.setdefault(row["task_name"], [])
        last = job_bars[-1] if job_bars else None
        if last is not None and last.end == start and last.outcome == outcome:
            last.end = end
        else:
            last = Bar(start=start, end=end, outcome=outcome)
            job_bars.append(last)
        last.runs += row["runs"]
        last.failed += row["failed"]
        last.aborted += row["aborted"]
    return Timeline(since=since, until=now, bars=bars)


def recent_failures(ctx: AdminContext, limit: int = 20) -> list[dict[str, Any]]:
    with ctx.engine.connect() as connection:
        rows = connection.exec_driver_sql(SQL["recent_failures"], {"limit": limit})
        return [dict(row) for row in rows.mappings()]
