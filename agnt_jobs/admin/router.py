"""The admin view's HTTP routes under ``/admin/scheduler``: the JSON API for scripts
(token in ``X-Internal-Token``) and the page for people (``/admin/scheduler/ui``).
Each route is one call into ``agnt_jobs.admin.service`` (or
``agnt_jobs.scheduler.control``).

Mount it in a FastAPI backend with ``backend.include_router(router)``.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BeforeValidator

from agnt_jobs.admin import errors, schemas, service, ui
from agnt_jobs.admin.auth import actor, audit, require_token
from agnt_jobs.admin.context import AdminContext, get_context
from agnt_jobs.scheduler import control

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
api = APIRouter(
    prefix=PREFIX,
    route_class=errors.AdminRoute,
    tags=["admin"],
    dependencies=[Depends(require_token)],
    responses=_ERRORS,
)

Context = Annotated[AdminContext, Depends(get_context)]
ScheduleId = Annotated[str, Path(max_length=128, description="A schedule (or job) id.")]


@api.get("", response_model=schemas.Registry, summary="The schedule registry")
def get_registry(ctx: Context) -> schemas.Registry:
    """Every schedule the deployed code declares, with its next run (UTC and WITA),
    its last run and its health; the schedules the database knows that this code
    dropped (`removed`); and where code and database disagree (`problems`). Use it
    after a deploy to see that no job was silently dropped."""
    return service.registry(ctx, datetime.now(UTC))


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


def _invalid(
    field: str, message: str, value: Any, part: str = "query"
) -> RequestValidationError:
    return errors.invalid(part, field, message, value)


_COLUMNS = {
    "cron": "cron",
    "zone": "zone",
    "misfire_policy": "misfire_policy",
    "timeout": "timeout",
}


def _refused(error: control.Refused, change: Any = None) -> RequestValidationError:
    """Postgres's refusal of a value as FastAPI's own 422, located at the body
    field it names (``schedules.cron ...``), with its one line as the message."""
    message = str(error)
    column = message.removeprefix("schedules.").split(" ", 1)[0]
    field = _COLUMNS.get(column, "body")
    value = getattr(change, field, None) if change is not None else None
    return _invalid(field, message, value, part="body")


@api.get(
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
    try:
        return service.list_runs(
            ctx,
            job=job,
            status=status_,
            since=_aware(since, ctx),
            until=_aware(until, ctx),
            cursor=cursor,
            limit=limit,
        )
    except service.BadFilter as error:
        value = {"job": job, "cursor": cursor, "since": since, "until": until}.get(
            error.field
        )
        raise _invalid(error.field, str(error), value) from None


# A run is named by its job id: the procrastinate_jobs row's id (docs/glossary.md).
JobId = Annotated[
    int,
    Path(ge=1, le=2**63 - 1, description="The run's job id (procrastinate_jobs.id)."),
]


@api.get(
    "/runs/{job_id}",
    response_model=schemas.RunDetail,
    responses=_NOT_FOUND,
    summary="One run with its attempts and events",
)
def get_run(
    ctx: Context,
    job_id: JobId,
) -> schemas.RunDetail:
    detail = service.run_detail(ctx, job_id)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {job_id}")
    return detail


@api.post(
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
    try:
        if body is not None and body.at is not None:
            when = _aware(body.at, ctx)
            assert when is not None
            deferred = service.run_at(ctx, schedule_id, when, actor(request), body.by)
        else:
            deferred = service.run_now(ctx, schedule_id)
    except control.UnknownId as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    except control.Refused as error:
        raise _invalid("at", str(error), body.at if body else None, "body") from None
    except control.NotConfigured as error:
        return JSONResponse(
            status_code=status.HTTP_409_CONFLICT,
            content=schemas.AlreadyWaitingOut(
                detail=str(error), waiting_job_id=None
            ).model_dump(),
        )
    except control.AlreadyWaiting as waiting:
        return JSONResponse(
            status_code=status.HTTP_409_CONFLICT,
            content=schemas.AlreadyWaitingOut(
                detail=f"{waiting}; not deferring another",
                waiting_job_id=waiting.job_id,
            ).model_dump(),
        )
    audit(request, "admin_run", schedule_id, job_id=deferred.job_id)
    return deferred


def _toggle(
    request: Request, ctx: AdminContext, schedule_id: str, enabled: bool
) -> schemas.Toggled:
    try:
        toggled = service.set_enabled(ctx, schedule_id, enabled, actor(request))
    except control.UnknownId as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    audit(request, "admin_resume" if enabled else "admin_pause", schedule_id)
    return toggled


@api.post(
    "/{schedule_id}/pause",
    response_model=schemas.Toggled,
    responses=_NOT_FOUND,
    summary="Pause a schedule",
)
def post_pause(request: Request, ctx: Context, schedule_id: ScheduleId) -> Any:
    """Its ticks are recorded as skipped (paused) by every worker from the next one;
    a run already waiting still runs."""
    return _toggle(request, ctx, schedule_id, False)


@api.post(
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


@api.patch(
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
    try:
        changed = service.change_schedule(ctx, schedule_id, change, actor(request))
    except control.UnknownId as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    except control.Refused as error:
        raise _refused(error, change) from None
    if not change.dry_run:
        audit(request, "admin_change", schedule_id)
    return changed


@api.post(
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
    try:
        reset = service.reset_schedule(
            ctx, schedule_id, actor(request), body.by if body else None
        )
    except control.UnknownId as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    except control.Refused as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    audit(request, "admin_reset", schedule_id)
    return reset


@api.post(
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
    for name, instant in (("since", since), ("until", until)):
        try:
            control.check_instant(name, instant)
        except control.Refused as refused:
            raise _invalid(name, str(refused), None, "body") from None
    try:
        retried = service.retry_runs(
            ctx, body.job, since, until, actor(request), body.by
        )
    except control.UnknownId as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    audit(request, "admin_retry_many", body.job, retried=len(retried.retried))
    return retried


@api.post(
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
    try:
        cancelled = service.cancel_run(
            ctx, job_id, actor(request), body.by if body else None
        )
    except control.UnknownId as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    except control.Refused as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    audit(request, "admin_cancel", str(job_id))
    return cancelled


@api.post(
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
    try:
        retried = service.retry_run(
            ctx, job_id, actor(request), body.by if body else None
        )
    except control.UnknownId as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    except control.Refused as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    audit(request, "admin_retry", str(job_id), new_job_id=retried.new_job_id)
    return retried


router = APIRouter(
    route_class=errors.AdminRoute, dependencies=[Depends(errors.readable_text)]
)
# The page first: its fixed paths (/ui/login) must win over /{schedule_id}/run.
router.include_router(ui.router)
router.include_router(api)
