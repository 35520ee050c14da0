"""The run history as the admin view shows it: attempts in ``job_runs``, filtered
and paged by a keyset cursor, and one run with its attempts and events."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from agnt_jobs.admin import schemas
from agnt_jobs.admin.context import AdminContext
from agnt_jobs.admin.read import seconds
from agnt_jobs.db import queries
from agnt_jobs.errors import Invalid
from agnt_jobs.models.runs import JobRun
from agnt_jobs.models.scheduling import ScheduleTick
from agnt_jobs.scheduler import run_control

SQL = queries.load("admin.sql")


class BadFilter(Invalid):
    """A filter or cursor the caller must fix; ``field`` names the query
    parameter."""

    part = "query"


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
            "not a cursor from this endpoint: pass next_cursor as given",
            "cursor",
            cursor,
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
                run_control.check_instant(name, instant)
            except Invalid as refused:
                raise BadFilter(str(refused), name) from None
    if since is not None and until is not None and since >= until:
        raise BadFilter("until must be later than since", "until")
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
                f"unknown job {job!r}: GET /admin/scheduler lists them all", "job", job
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
        duration_seconds=seconds(finished - run.started_at) if finished else None,
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
            duration_seconds=seconds(job["duration"]),
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
