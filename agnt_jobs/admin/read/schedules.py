"""The registry as the admin view shows it (``GET /admin/scheduler`` and the
main page): every schedule with its next run, its last run and its health, the
schedules the code dropped, and where code and database disagree.

Health, the first that applies (the README's "Admin view" says the same):
``not_deployed`` no row in ``schedules`` (no worker with this code started);
``no_body`` declared without a job body; ``paused`` ``enabled`` is false;
``not_configured`` a setting its job needs is unset (in this process's settings);
``missed`` the last decided tick was skipped as ``missed``, or the next tick is
``overdue`` in ``schedule_late_ticks`` (due, and no worker decided it);
``failing`` the newest attempt in ``job_runs`` ended ``failed``;
``late`` the last decided tick is in ``schedule_late_ticks`` as ``late`` or
``queued``; otherwise ``on_time`` (also before a schedule's first tick).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from agnt_jobs.admin import schemas
from agnt_jobs.admin.context import AdminContext
from agnt_jobs.admin.read import seconds
from agnt_jobs.db import queries
from agnt_jobs.models.scheduling import SkipReason
from agnt_jobs.scheduler import broken, schedule_control
from agnt_jobs.scheduler.bodies import missing_settings
from agnt_jobs.scheduler.declaration import Schedule

SQL = queries.load("admin.sql")
Health = schemas.Health


def health(
    row: dict[str, Any] | None,
    has_body: bool,
    missing: list[str],
    broken_reason: str | None = None,
) -> tuple[Health, str]:
    """A declared schedule's health from its ``registry`` row (None: not in the
    database), the settings its job waits for and why no worker can follow it
    (``scheduler.broken``), with the reason in words."""
    if row is None:
        return Health.NOT_DEPLOYED, "no worker running this code has started yet"
    if not has_body:
        return Health.NO_BODY, "declared without a job body: it never runs"
    if broken_reason:
        return Health.BROKEN, f"broken, it does not tick: {broken_reason}"
    if not row["enabled"]:
        return Health.PAUSED, "paused: its ticks are skipped"
    if missing:
        return (
            Health.NOT_CONFIGURED,
            f"not configured: its ticks are skipped until {', '.join(missing)} is set",
        )
    kinds = set(row["late_kinds"])
    if "overdue" in kinds:
        return Health.MISSED, "its tick is due and no worker has deferred it"
    if row["last_tick_reason"] == SkipReason.MISSED:
        return Health.MISSED, "its last tick passed while no worker was deferring"
    if row["last_run_status"] == "failed":
        return Health.FAILING, "its last run failed"
    if "late" in kinds:
        return Health.LATE, "its last tick was deferred or started late"
    if "queued" in kinds:
        return Health.LATE, "its last tick was skipped: the previous run still waited"
    return Health.ON_TIME, "on time"


def registry(ctx: AdminContext, now: datetime) -> schemas.Registry:
    """Every declared schedule with its next run, last run and health, then those
    created in SQL; the schedules the database knows that this code dropped; the
    disagreements. Values are those in effect (the table's) where the database
    has the schedule."""
    with ctx.engine.connect() as connection:
        rows = {
            row["id"]: dict(row)
            for row in connection.exec_driver_sql(SQL["registry"]).mappings()
        }
        duplicates = {
            row.status: row.payments
            for row in connection.exec_driver_sql(SQL["duplicate_payments"])
        }
    wita = ZoneInfo(ctx.settings.business_timezone)
    entries = [
        _entry(
            schedule.id,
            schedule.description,
            schedule,
            rows.get(id_),
            id_ in ctx.app.tasks,
            missing_settings(id_, ctx.settings),
            now,
            wita,
        )
        for id_, schedule in ctx.app.schedules.items()
    ]
    entries += [
        _entry(
            id_,
            row["description"],
            None,
            row,
            row["task_name"] in ctx.app.tasks,
            missing_settings(row["task_name"], ctx.settings),
            now,
            wita,
        )
        for id_, row in sorted(rows.items())
        if not row["declared"] and row["removed_at"] is None
    ]
    removed = [
        schemas.RemovedSchedule(
            id=id_,
            description=row["description"],
            trigger=row["cron"],
            zone=row["zone"],
            queue=row["queue"],
            first_seen=row["first_seen"],
            last_seen=row["last_seen"],
            removed_at=row["removed_at"],
            last_run=_last_run(row),
        )
        for id_, row in sorted(rows.items())
        if id_ not in ctx.app.schedules and row["declared"]
    ]
    problems = [
        schemas.Problem(kind=p.kind, schedule_id=p.schedule_id, message=p.message)  # type: ignore[arg-type]
        for p in schedule_control.check(ctx.app, ctx.engine, ctx.settings)
    ]
    counts = Counter(entry.health for entry in entries)
    return schemas.Registry(
        generated_at=now.astimezone(UTC),
        timezone=ctx.settings.business_timezone,
        health_counts={health: counts.get(health, 0) for health in Health},
        schedules=entries,
        removed=removed,
        problems=problems,
        duplicate_payments=duplicates,
    )


def _entry(
    id_: str,
    description: str,
    schedule: Schedule | None,
    row: dict[str, Any] | None,
    has_body: bool,
    missing: list[str],
    now: datetime,
    wita: ZoneInfo,
) -> schemas.ScheduleEntry:
    """One schedule: ``schedule`` is the code's declaration (None for one created
    in SQL), ``row`` the table's (None before any worker declared it)."""
    broken_reason = broken.problem(row, now) if row is not None else None
    state, reason = health(row, has_body, missing, broken_reason)
    effective = schedule
    if row is not None:
        try:
            effective = broken.follow(row, now)
        except broken.Broken:
            effective = None
    next_run = None
    if effective is not None:
        with contextlib.suppress(ValueError):
            next_run = effective.next_after(now)
    last_tick = None
    if row is not None and row["last_tick_at"] is not None:
        last_tick = schemas.LastTick(
            at=row["last_tick_at"],
            outcome=row["last_tick_outcome"],
            reason=row["last_tick_reason"],
        )
    source = row if row is not None else {}
    declared = None
    if schedule is not None:
        declared = schemas.Declared(
            cron=schedule.cron,
            zone=schedule.zone,
            misfire_policy=str(schedule.misfire),  # type: ignore[arg-type]
            timeout_seconds=schedule.timeout.total_seconds(),
        )
    return schemas.ScheduleEntry(
        id=id_,
        description=description,
        trigger=source.get("cron") or (schedule.cron if schedule else ""),
        zone=source.get("zone") or (schedule.zone if schedule else ""),
        queue=source.get("queue") or (schedule.queue if schedule else ""),
        misfire_policy=source.get("misfire_policy")
        or (str(schedule.misfire) if schedule else "skip"),
        timeout_seconds=seconds(
            source["timeout"] if row else schedule.timeout  # type: ignore[union-attr]
        ),
        task_name=source.get("task_name") or id_,
        created_in="code" if schedule is not None else "sql",
        overridden=bool(source.get("overridden")),
        declared=declared,
        enabled=True if row is None else row["enabled"],
        has_body=has_body,
        missing_settings=missing,
        deployed=row is not None,
        next_run_at=next_run.astimezone(UTC) if next_run else None,
        next_run_at_wita=next_run.astimezone(wita).isoformat() if next_run else None,
        last_tick=last_tick,
        last_run=_last_run(row) if row else None,
        health=state,
        health_reason=reason,
    )


def _last_run(row: dict[str, Any]) -> schemas.LastRun | None:
    if row["last_run_job_id"] is None:
        return None
    return schemas.LastRun(
        job_id=row["last_run_job_id"],
        status=row["last_run_status"],
        started_at=row["last_run_started_at"],
        finished_at=row["last_run_finished_at"],
        duration_seconds=seconds(row["last_run_duration"]),
        result=row["last_run_result"],
        error=row["last_run_error"],
    )
