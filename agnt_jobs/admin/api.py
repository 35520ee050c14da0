"""The admin view's JSON API under ``/admin/scheduler``, for scripts (token in
``X-Internal-Token``): each route is one call into what the view reads
(``admin.read``) or does (``admin.actions``); what an error answers (404, 409,
422 at its field) is said once, in ``errors.answer``. The pages for people are
``ui``'s; ``app.router`` mounts both.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BeforeValidator

from agnt_jobs.admin import actions, errors, schemas
from agnt_jobs.admin.auth import actor, audit, require_token
from agnt_jobs.admin.context import AdminContext, get_context
from agnt_jobs.admin.read import run_history, schedules
from agnt_jobs.errors import NotFound

logger = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        "model": schemas.ErrorOut,
        "description": "No X-Internal-Token or Authorization: Bearer header.",
    },
    403: {"model": schemas.ErrorOut, "description": "Wrong token."},
    429: {
        "model": schemas.ErrorOut,
        "description": "Too many wrong tokens from this address within a minute: "
        "try again after Retry-After seconds.",
        "headers": {
            "Retry-After": {
                "description": "Seconds until the address may try again.",
                "schema": {"type": "integer"},
            }
        },
    },
    503: {
        "model": schemas.ErrorOut,
        "description": "INTERNAL_API_TOKEN is not set: every request is refused.",
    },
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": schemas.ErrorOut, "description": "Unknown id."}
}
_BAD_BODY: dict[int | str, dict[str, Any]] = {
    400: {"model": schemas.ErrorOut, "description": "The body is not JSON."}
}

PREFIX = "/admin/scheduler"
router = APIRouter(
    prefix=PREFIX,
    route_class=errors.AdminRoute,
    tags=["admin"],
    dependencies=[Depends(require_token)],
    responses=_ERRORS,
)

Context = Annotated[AdminContext, Depends(get_context)]
ScheduleId = Annotated[str, Path(max_length=128, description="A schedule (or job) id.")]


@router.get("", response_model=schemas.Registry, summary="The schedule registry")
def get_registry(ctx: Context) -> schemas.Registry:
    """Every schedule the deployed code declares, with its next run (UTC and WITA),
    its last run and its health; the schedules the database knows that this code
    dropped (`removed`); and where code and database disagree (`problems`). Use it
    after a deploy to see that no job was silently dropped."""
    return schedules.registry(ctx, datetime.now(UTC))


_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _iso_only(value: Any) -> Any:
    # Pydantic would read a bare number as a Unix timestamp; the schema promises
    # (and operators write) ISO 8601, so a number is a mistake to report.
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        raise ValueError("must be ISO 8601, e.g. 2028-02-28T00:00:00+08:00")
    return value


Instant = Annotated[datetime, BeforeValidator(_iso_only)]


def _aware(value: datetime | None, ctx: AdminContext) -> datetime | None:
    """Without an offset, an instant is read in the business zone (WITA)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(ctx.settings.business_timezone))


@router.get(
    "/runs",
    response_model=schemas.RunPage,
    summary="Run history, newest first",
)
def get_runs(
    ctx: Context,
    job: Annotated[
        str | None, Query(max_length=128, description="Only this job's runs.")
    ] = None,
    status_: Annotated[
        schemas.RunStatus | None,
        Query(alias="status", description="Only attempts that ended so."),
    ] = None,
    since: Annotated[
        Instant | None,
        Query(description="Started at or after (ISO 8601; no offset: WITA)."),
    ] = None,
    until: Annotated[
        Instant | None,
        Query(description="Started before (ISO 8601; no offset: WITA)."),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(max_length=256, description="`next_cursor` of the previous page."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Runs per page.")] = 50,
) -> schemas.RunPage:
    """Each attempt of each job in the run history (`job_runs`, kept for
    AGNT_RUN_HISTORY_RETENTION_DAYS), filtered, one page at a time."""
    return run_history.list_runs(
        ctx,
        job=job,
        status=status_,
        since=_aware(since, ctx),
        until=_aware(until, ctx),
        cursor=cursor,
        limit=limit,
    )


# A run is named by its job id: the procrastinate_jobs row's id (docs/glossary.md).
JobId = Annotated[
    int,
    Path(ge=1, le=2**63 - 1, description="The run's job id (procrastinate_jobs.id)."),
]


@router.get(
    "/runs/{job_id}",
    response_model=schemas.RunDetail,
    responses=_NOT_FOUND,
    summary="One run with its attempts and events",
)
def get_run(
    ctx: Context,
    job_id: JobId,
) -> schemas.RunDetail:
    detail = run_history.run_detail(ctx, job_id)
    if detail is None:
        raise NotFound(f"no run {job_id}")
    return detail


@router.post(
    "/{schedule_id}/run",
    response_model=schemas.Deferred,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **_NOT_FOUND,
        **_BAD_BODY,
        409: {
            "model": schemas.AlreadyWaitingOut,
            "description": "A run of this job is already waiting (queueing lock), "
            "or the job is not configured (a setting it needs is unset).",
        },
    },
    summary="Run a job now",
)
def post_run(
    request: Request,
    ctx: Context,
    schedule_id: ScheduleId,
    body: schemas.RunIn | None = None,
) -> schemas.Deferred | JSONResponse:
    """Defer a run now (its tick is now); at most one run of a job waits. With
    `at`, a run at that instant instead: it waits as scheduled, its tick is `at`,
    and it does not hold back the job's scheduled ticks."""
    if body is not None and body.at is not None:
        when = _aware(body.at, ctx)
        assert when is not None
        deferred = actions.run_at(ctx, schedule_id, when, actor(request), body.by)
    else:
        deferred = actions.run_now(ctx, schedule_id)
    audit(request, "admin_run", schedule_id, job_id=deferred.job_id)
    return deferred


def _toggle(
    request: Request, ctx: AdminContext, schedule_id: str, enabled: bool
) -> schemas.Toggled:
    toggled = actions.set_enabled(ctx, schedule_id, enabled, actor(request))
    audit(request, "admin_resume" if enabled else "admin_pause", schedule_id)
    return toggled


@router.post(
    "/{schedule_id}/pause",
    response_model=schemas.Toggled,
    responses=_NOT_FOUND,
    summary="Pause a schedule",
)
def post_pause(request: Request, ctx: Context, schedule_id: ScheduleId) -> Any:
    """Its ticks are recorded as skipped (paused) by every worker from the next one;
    a run already waiting still runs."""
    return _toggle(request, ctx, schedule_id, False)


@router.post(
    "/{schedule_id}/resume",
    response_model=schemas.Toggled,
    responses=_NOT_FOUND,
    summary="Resume a schedule",
)
def post_resume(request: Request, ctx: Context, schedule_id: ScheduleId) -> Any:
    """From its next tick; paused ticks are not caught up."""
    return _toggle(request, ctx, schedule_id, True)


_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": schemas.ErrorOut,
        "description": "The run's state forbids it (already ended, not failed, "
        "already retried).",
    }
}


@router.patch(
    "/{schedule_id}",
    response_model=schemas.ScheduleOut,
    responses={**_NOT_FOUND, **_BAD_BODY},
    summary="Change a schedule",
)
def patch_schedule(
    request: Request,
    ctx: Context,
    schedule_id: ScheduleId,
    change: schemas.ScheduleChangeIn,
) -> schemas.ScheduleOut:
    """Change cron, zone, misfire policy, timeout or the pause switch; every
    worker follows within a second. Postgres checks the values (422 with its one
    line), audits the change (source `admin`) and a deploy never undoes it. With
    `dry_run`, the next five runs under the new values and nothing changed."""
    changed = actions.change_schedule(ctx, schedule_id, change, actor(request))
    if not change.dry_run:
        audit(request, "admin_change", schedule_id)
    return changed


@router.post(
    "/{schedule_id}/reset",
    response_model=schemas.ScheduleOut,
    responses={
        **_NOT_FOUND,
        **_BAD_BODY,
        409: {
            "model": schemas.ErrorOut,
            "description": "Created in SQL: it has no declaration to return to.",
        },
    },
    summary="Return a schedule to its declaration",
)
def post_reset(
    request: Request,
    ctx: Context,
    schedule_id: ScheduleId,
    body: schemas.RunRequestIn | None = None,
) -> schemas.ScheduleOut:
    """Back to what the code declares (the pause switch stays as it is)."""
    reset = actions.reset_schedule(
        ctx, schedule_id, actor(request), body.by if body else None
    )
    audit(request, "admin_reset", schedule_id)
    return reset


@router.post(
    "/runs/retry",
    response_model=schemas.RetriedMany,
    responses={**_NOT_FOUND, **_BAD_BODY},
    summary="Retry a job's failed runs in a time window",
)
def post_retry_many(
    request: Request, ctx: Context, body: schemas.RetryManyIn
) -> schemas.RetriedMany:
    """Every run of `job` that ended failed, timed out or cancelled in
    [since, until) and has no retry under way, oldest first."""
    since = _aware(body.since, ctx)
    until = _aware(body.until, ctx) or datetime.now(UTC)
    assert since is not None
    retried = actions.retry_runs(ctx, body.job, since, until, actor(request), body.by)
    audit(request, "admin_retry_many", body.job, retried=len(retried.retried))
    return retried


@router.post(
    "/runs/{job_id}/cancel",
    response_model=schemas.Cancelled,
    responses={**_NOT_FOUND, **_CONFLICT, **_BAD_BODY},
    summary="Cancel a waiting or running run",
)
def post_cancel(
    request: Request,
    ctx: Context,
    job_id: JobId,
    body: schemas.RunRequestIn | None = None,
) -> schemas.Cancelled:
    """A waiting run is cancelled at once; a running one stops at its next
    checkpoint and ends cancelled."""
    cancelled = actions.cancel_run(
        ctx, job_id, actor(request), body.by if body else None
    )
    audit(request, "admin_cancel", str(job_id))
    return cancelled


@router.post(
    "/runs/{job_id}/retry",
    response_model=schemas.Retried,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**_NOT_FOUND, **_CONFLICT, **_BAD_BODY},
    summary="Retry a failed, timed-out or cancelled run",
)
def post_retry(
    request: Request,
    ctx: Context,
    job_id: JobId,
    body: schemas.RunRequestIn | None = None,
) -> schemas.Retried:
    """A new job with the same job, tick, queue and lock."""
    retried = actions.retry_run(ctx, job_id, actor(request), body.by if body else None)
    audit(request, "admin_retry", str(job_id), new_job_id=retried.new_job_id)
    return retried
