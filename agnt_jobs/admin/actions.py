"""What the admin view does, for its JSON API and its pages alike: run a job now
or at a time, pause and resume, change a schedule or reset it, cancel and retry
runs. Each is a call of ``agnt_jobs.scheduler.schedule_control`` or
``run_control``, the same as the CLI's, with the admin's actor; errors propagate
to the door that answers them (``errors.answer``, or the page's notice)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from agnt_jobs.admin import schemas
from agnt_jobs.admin.context import AdminContext
from agnt_jobs.scheduler import operators, run_control, schedule_control


def run_now(ctx: AdminContext, job: str) -> schemas.Deferred:
    """Defer ``job`` now. NotFound / AlreadyWaiting propagate."""
    job_id = run_control.run_now(ctx.app, ctx.engine, ctx.settings, job)
    return schemas.Deferred(job=job, job_id=job_id)


def set_enabled(
    ctx: AdminContext, schedule_id: str, enabled: bool, actor: operators.Actor
) -> schemas.Toggled:
    schedule_control.set_enabled(ctx.app, ctx.engine, schedule_id, enabled, actor)
    return schemas.Toggled(id=schedule_id, enabled=enabled)


def _by(actor: operators.Actor, by: str | None) -> operators.Actor:
    """The caller may name who acts; the address stays in the audit either way."""
    if not by:
        return actor
    return operators.Actor(by=f"{by} via {actor.by}", source=actor.source)


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
    actor: operators.Actor,
) -> schemas.ScheduleOut:
    """NotFound / Invalid propagate."""
    row = schedule_control.set_schedule(
        ctx.app,
        ctx.engine,
        schedule_id,
        schedule_control.Change(
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
    ctx: AdminContext, schedule_id: str, actor: operators.Actor, by: str | None
) -> schemas.ScheduleOut:
    row = schedule_control.reset(
        ctx.app, ctx.engine, schedule_id, _by(actor, by), datetime.now(UTC)
    )
    return _schedule_out(ctx, row, False)


def run_at(
    ctx: AdminContext,
    job: str,
    when: datetime,
    actor: operators.Actor,
    by: str | None,
) -> schemas.Deferred:
    job_id = run_control.run_at(
        ctx.app, ctx.engine, ctx.settings, job, when, _by(actor, by)
    )
    return schemas.Deferred(job=job, job_id=job_id)


def cancel_run(
    ctx: AdminContext, job_id: int, actor: operators.Actor, by: str | None
) -> schemas.Cancelled:
    outcome = run_control.cancel(ctx.engine, job_id, _by(actor, by))
    return schemas.Cancelled(job_id=job_id, outcome=outcome)  # type: ignore[arg-type]


def retry_run(
    ctx: AdminContext, job_id: int, actor: operators.Actor, by: str | None
) -> schemas.Retried:
    new_id = run_control.retry(ctx.engine, job_id, _by(actor, by))
    return schemas.Retried(job_id=job_id, new_job_id=new_id)


def retry_runs(
    ctx: AdminContext,
    job: str,
    since: datetime,
    until: datetime,
    actor: operators.Actor,
    by: str | None,
) -> schemas.RetriedMany:
    pairs = run_control.retry_all(ctx.engine, job, since, until, _by(actor, by))
    return schemas.RetriedMany(
        retried=[schemas.Retried(job_id=old, new_job_id=new) for old, new in pairs]
    )
