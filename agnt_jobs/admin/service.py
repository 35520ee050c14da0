"""What the admin view shows and does, as plain functions over an ``AdminContext``:
the registry with each schedule's health, the run history with keyset pagination,
one run with its attempts and events, and the manual actions (which are
``agnt_jobs.scheduler.control``'s, the same as the CLI's). It reads the audit views and
``job_runs`` and keeps no state of its own.

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

import base64
import binascii
import contextlib
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from agnt_jobs.admin import schemas
from agnt_jobs.admin.context import AdminContext
from agnt_jobs.db import queries
from agnt_jobs.models.runs import JobRun
from agnt_jobs.models.scheduling import ScheduleTick, SkipReason
from agnt_jobs.scheduler import broken, control
from agnt_jobs.scheduler.bodies import missing_settings
from agnt_jobs.scheduler.declaration import Schedule

SQL = queries.load("admin.sql")
Health = schemas.Health


class BadFilter(ValueError):
    """A filter or cursor the caller must fix; ``field`` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# --- the registry -----------------------------------------------------------------


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
        for p in control.check(ctx.app, ctx.engine, ctx.settings)
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
        timeout_seconds=_seconds(
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


def _seconds(delta: timedelta | None) -> float | None:
    return None if delta is None else delta.total_seconds()


def _last_run(row: dict[str, Any]) -> schemas.LastRun | None:
    if row["last_run_job_id"] is None:
        return None
    return schemas.LastRun(
        job_id=row["last_run_job_id"],
        status=row["last_run_status"],
        started_at=row["last_run_started_at"],
        finished_at=row["last_run_finished_at"],
        duration_seconds=_seconds(row["last_run_duration"]),
        result=row["last_run_result"],
        error=row["last_run_error"],
    )


# --- the run history --------------------------------------------------------------


def encode_cursor(run: schemas.Run) -> str:
    key = [run.started_at.isoformat(), run.job_id, run.attempt]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int, int]:
    """The (started_at, job_id, attempt) a page ended at; BadFilter if malformed."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        started, job_id, attempt = json.loads(base64.urlsafe_b64decode(padded))
        at = datetime.fromisoformat(started)
        if at.tzinfo is None or not all(
            type(value) is int and 0 <= value < 2**63 for value in (job_id, attempt)
        ):
            raise ValueError
        return at, job_id, attempt
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadFilter(
            "cursor", "not a cursor from this endpoint: pass next_cursor as given"
        ) from None


def list_runs(
    ctx: AdminContext,
    *,
    job: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    cursor: str | None,
    limit: int,
) -> schemas.RunPage:
    """Attempts in ``job_runs``, newest first (started_at, job id, attempt), after
    ``cursor``. ``since`` is inclusive and ``until`` exclusive, on ``started_at``."""
    for name, instant in (("since", since), ("until", until)):
        if instant is not None:
            try:
                control.check_instant(name, instant)
            except control.Refused as refused:
                raise BadFilter(name, str(refused)) from None
    if since is not None and until is not None and since >= until:
        raise BadFilter("until", "until must be later than since")
    runs, ticks = JobRun.__table__.c, ScheduleTick.__table__.c
    query = (
        sa.select(*runs, ticks.tick_at.label("scheduled_tick"))
        .outerjoin_from(
            JobRun.__table__, ScheduleTick.__table__, ticks.job_id == runs.job_id
        )
        .order_by(runs.started_at.desc(), runs.job_id.desc(), runs.attempt.desc())
        .limit(limit + 1)
    )
    if job is not None:
        query = query.where(runs.task_name == job)
    if status is not None:
        query = query.where(runs.status == status)
    if since is not None:
        query = query.where(runs.started_at >= since)
    if until is not None:
        query = query.where(runs.started_at < until)
    if cursor is not None:
        key = sa.tuple_(runs.started_at, runs.job_id, runs.attempt)
        query = query.where(key < sa.tuple_(*decode_cursor(cursor)))
    with ctx.engine.connect() as connection:
        if job is not None and not _known_job(ctx, connection, job):
            raise BadFilter(
                "job", f"unknown job {job!r}: GET /admin/scheduler lists them all"
            )
        rows = connection.execute(query).all()
    page = [_run(row, row.scheduled_tick) for row in rows[:limit]]
    more = len(rows) > limit
    return schemas.RunPage(
        runs=page, next_cursor=encode_cursor(page[-1]) if more else None
    )


def _known_job(ctx: AdminContext, connection: sa.Connection, job: str) -> bool:
    if job in ctx.app.tasks or job in ctx.app.schedules:
        return True
    return bool(connection.exec_driver_sql(SQL["known_jobs"], {"job": job}).scalar())


def _run(run: Any, scheduled_tick: datetime | None) -> schemas.Run:
    finished = run.finished_at
    return schemas.Run(
        job_id=run.job_id,
        attempt=run.attempt,
        job=run.task_name,
        queue=run.queue_name,
        status=run.status,
        trigger="schedule" if scheduled_tick is not None else "manual",
        scheduled_tick=scheduled_tick,
        started_at=run.started_at,
        finished_at=finished,
        duration_seconds=_seconds(finished - run.started_at) if finished else None,
        worker_name=run.worker_name,
        result=run.result,
        error=run.error,
    )


def run_detail(ctx: AdminContext, job_id: int) -> schemas.RunDetail | None:
    """One run (job) with every attempt and its events; None if neither the queue
    nor the history knows it."""
    params = {"job_id": job_id}
    with ctx.engine.connect() as connection:
        job = connection.exec_driver_sql(SQL["run_job"], params).mappings().first()
        attempts = [
            _run(row, row.scheduled_tick)
            for row in connection.exec_driver_sql(SQL["run_attempts"], params)
        ]
        events = [
            schemas.Event(**row)
            for row in connection.exec_driver_sql(SQL["run_events"], params).mappings()
        ]
    if job is None and not attempts:
        return None
    last = attempts[-1] if attempts else None
    if job is not None:
        return schemas.RunDetail(
            job_id=job_id,
            job=job["job_name"],
            status=job["status"],
            trigger=job["trigger"],
            scheduled_tick=job["scheduled_tick"],
            deferred_at=job["deferred_at"],
            started_at=job["started_at"],
            finished_at=job["finished_at"],
            duration_seconds=_seconds(job["duration"]),
            queue=job["queue_name"],
            error=job["error"],
            result=job["result"],
            attempts=attempts,
            events=events,
        )
    # The job itself is past its retention; its history remains.
    assert last is not None
    return schemas.RunDetail(
        job_id=job_id,
        job=last.job,
        status=last.status,
        trigger=last.trigger,
        scheduled_tick=last.scheduled_tick,
        deferred_at=None,
        started_at=attempts[0].started_at,
        finished_at=last.finished_at,
        duration_seconds=last.duration_seconds,
        queue=last.queue,
        error=last.error,
        result=last.result,
        attempts=attempts,
        events=events,
    )


# --- actions (agnt_jobs.scheduler.control, as the CLI) ------------------------------


def run_now(ctx: AdminContext, job: str) -> schemas.Deferred:
    """Defer ``job`` now. control.UnknownId / control.AlreadyWaiting propagate."""
    job_id = control.run_now(ctx.app, ctx.engine, ctx.settings, job)
    return schemas.Deferred(job=job, job_id=job_id)


def set_enabled(
    ctx: AdminContext, schedule_id: str, enabled: bool, actor: control.Actor
) -> schemas.Toggled:
    control.set_enabled(ctx.app, ctx.engine, schedule_id, enabled, actor)
    return schemas.Toggled(id=schedule_id, enabled=enabled)


def _by(actor: control.Actor, by: str | None) -> control.Actor:
    """The caller may name who acts; the address stays in the audit either way."""
    if not by:
        return actor
    return control.Actor(by=f"{by} via {actor.by}", source=actor.source)


def _schedule_out(
    ctx: AdminContext, row: dict[str, Any], dry_run: bool
) -> schemas.ScheduleOut:
    wita = ZoneInfo(ctx.settings.business_timezone)
    return schemas.ScheduleOut(
        id=row["id"],
        cron=row["cron"],
        zone=row["zone"],
        misfire_policy=row["misfire_policy"],
        timeout_seconds=row["timeout"].total_seconds(),
        enabled=row["enabled"],
        overridden=row["overridden"],
        next_runs=[run.astimezone(UTC) for run in row["next_runs"]],
        next_runs_wita=[run.astimezone(wita).isoformat() for run in row["next_runs"]],
        dry_run=dry_run,
    )


def change_schedule(
    ctx: AdminContext,
    schedule_id: str,
    change: schemas.ScheduleChangeIn,
    actor: control.Actor,
) -> schemas.ScheduleOut:
    """control.UnknownId / control.Refused propagate."""
    row = control.set_schedule(
        ctx.app,
        ctx.engine,
        schedule_id,
        control.Change(
            cron=change.cron,
            zone=change.zone,
            misfire_policy=change.misfire_policy,
            timeout=change.timeout,
            enabled=change.enabled,
        ),
        _by(actor, change.by),
        datetime.now(UTC),
        dry_run=change.dry_run,
    )
    return _schedule_out(ctx, row, change.dry_run)


def reset_schedule(
    ctx: AdminContext, schedule_id: str, actor: control.Actor, by: str | None
) -> schemas.ScheduleOut:
    row = control.reset(
        ctx.app, ctx.engine, schedule_id, _by(actor, by), datetime.now(UTC)
    )
    return _schedule_out(ctx, row, False)


def run_at(
    ctx: AdminContext, job: str, when: datetime, actor: control.Actor, by: str | None
) -> schemas.Deferred:
    job_id = control.run_at(
        ctx.app, ctx.engine, ctx.settings, job, when, _by(actor, by)
    )
    return schemas.Deferred(job=job, job_id=job_id)


def cancel_run(
    ctx: AdminContext, job_id: int, actor: control.Actor, by: str | None
) -> schemas.Cancelled:
    outcome = control.cancel(ctx.engine, job_id, _by(actor, by))
    return schemas.Cancelled(job_id=job_id, outcome=outcome)  # type: ignore[arg-type]


def retry_run(
    ctx: AdminContext, job_id: int, actor: control.Actor, by: str | None
) -> schemas.Retried:
    new_id = control.retry(ctx.engine, job_id, _by(actor, by))
    return schemas.Retried(job_id=job_id, new_job_id=new_id)


def retry_runs(
    ctx: AdminContext,
    job: str,
    since: datetime,
    until: datetime,
    actor: control.Actor,
    by: str | None,
) -> schemas.RetriedMany:
    pairs = control.retry_all(ctx.engine, job, since, until, _by(actor, by))
    return schemas.RetriedMany(
        retried=[schemas.Retried(job_id=old, new_job_id=new) for old, new in pairs]
    )
