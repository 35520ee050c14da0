"""The admin pages for people, server-rendered (Jinja2): the registry with coloured
health and next runs, a 24-hour timeline of each job's runs and the newest
failures; a page per schedule (its settings, the cron in words, next runs, figures
over 24 hours and 7 days, a duration chart, its history); the queues and workers;
one run's detail. Times are WITA with UTC on hover, durations in ms under a second.

The only script is ``static/refresh.js``, served from here: it reloads a page's
``<main>`` every few seconds from the same URL (its filters kept) and asks before a
destructive form is sent. The pages work without it, but for the confirmations.

Sign-in posts the token once and gets a session cookie (``auth``); every POST
carries the session's CSRF value. After an action the browser is sent back to the
page it came from (303) with a one-line notice.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal, get_args
from urllib.parse import parse_qsl, quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

import pydantic
from fastapi import APIRouter, Depends, Form, Path, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from agnt_jobs import logs
from agnt_jobs.admin import (
    auth,
    chart,
    errors,
    formats,
    pages,
    schemas,
    service,
    timeline,
)
from agnt_jobs.admin.context import AdminContext, get_context
from agnt_jobs.scheduler import control

logger = logging.getLogger(__name__)

templates = Jinja2Templates(directory=FilePath(__file__).parent / "templates")
# An id in a link or a form action is one path segment, whatever it holds: its
# "/", "?" and "#" are encoded, so no value can point a link at another route.
templates.env.filters["segment"] = lambda value: quote(str(value), safe="")
STATIC = FilePath(__file__).parent / "static"

# Forms post to this origin only, nothing loads from elsewhere, and the only script
# is our own file (no inline script, no handler attributes).
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(
    prefix="/admin/scheduler/ui",
    include_in_schema=False,
    route_class=errors.AdminRoute,
)
Context = Annotated[AdminContext, Depends(get_context)]


def _wita(ctx: AdminContext) -> ZoneInfo:
    return ZoneInfo(ctx.settings.business_timezone)


def _render(
    request: Request,
    ctx: AdminContext,
    name: str,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    zone = _wita(ctx)
    return templates.TemplateResponse(
        request,
        name,
        {
            "zone": zone,
            "utc": UTC,
            "zone_name": ctx.settings.business_timezone,
            "when": lambda value, seconds=False: formats.when(value, zone, seconds),
            "duration": formats.duration,
            "cron_words": formats.cron_words,
            "refresh_seconds": ctx.settings.admin_refresh_seconds,
            # What the last action said (the 303 after it carries it here).
            "notice": request.query_params.get("notice"),
            "error": request.query_params.get("error"),
            **context,
        },
        status_code=status_code,
        headers=HEADERS,
    )


def _page_path(request: Request) -> str:
    return request.url_for("admin_ui").path


# A page of ours to return to: our path, then an optional query; nothing that
# could lead elsewhere (no scheme, no host, no "//", no backslash).
_OWN_PAGE = re.compile(r"(/[A-Za-z0-9_.~-]+)+(\?[^#\\\s]*)?")


def _back(
    request: Request, back: str | None = None, **message: str
) -> RedirectResponse:
    """303 to the page the form came from (``back``, if it is one of ours), or the
    registry; with the notice or error in the query, the page's filters kept."""
    target = _page_path(request)
    query: list[tuple[str, str]] = []
    if back and _OWN_PAGE.fullmatch(back) and back.startswith(target):
        parts = urlsplit(back)
        target = parts.path
        query = [
            (k, v)
            for k, v in parse_qsl(parts.query)
            if k not in ("notice", "error", "cursor")
        ]
    query += list(message.items())
    suffix = f"?{urlencode(query)}" if query else ""
    return RedirectResponse(target + suffix, status_code=status.HTTP_303_SEE_OTHER)


def _session(request: Request, ctx: AdminContext) -> str | None:
    """The request's live session cookie, or None."""
    value = request.cookies.get(auth.SESSION_COOKIE)
    if not auth.session_live(ctx, value):
        return None
    assert value is not None
    request.state.agnt_admin_credential = f"admin session {auth.session_id(value)}"
    return value


def _here(request: Request) -> str:
    """This page's path and query, for its forms' ``back`` field."""
    query = [
        (k, v) for k, v in parse_qsl(request.url.query) if k not in ("notice", "error")
    ]
    return request.url.path + (f"?{urlencode(query)}" if query else "")


def _signed_out(
    request: Request, ctx: AdminContext, code: int = 200, **kw: Any
) -> Response:
    reason = auth.closed(ctx.settings)
    if reason is not None:
        return _render(request, ctx, "message.html", 503, message=reason)
    return _render(request, ctx, "login.html", code, **kw)


@router.get("", name="admin_ui", response_class=HTMLResponse)
def page(
    request: Request,
    ctx: Context,
) -> Response:
    session = _session(request, ctx)
    if session is None:
        return _signed_out(request, ctx)
    token = auth.configured_token(ctx.settings)
    assert token is not None
    now = datetime.now(UTC)
    return _render(
        request,
        ctx,
        "scheduler.html",
        here=_here(request),
        registry=service.registry(ctx, now),
        timeline=timeline.timeline(ctx, now),
        failures=timeline.recent_failures(ctx),
        csrf=auth.csrf_value(session, token),
    )


@router.post("/login")
def login(
    request: Request,
    ctx: Context,
    token: Annotated[str, Form(max_length=4096)] = "",
) -> Response:
    configured = auth.configured_token(ctx.settings)
    if configured is None or auth.closed(ctx.settings) is not None:
        return _signed_out(request, ctx)
    if not token:
        return _signed_out(request, ctx, 401, error="Enter the token.")
    door = auth.throttle(request, ctx.settings)
    client = auth.client_address(request)
    wait = door.retry_after(client)
    if wait is not None:
        response = _signed_out(
            request,
            ctx,
            429,
            error=f"Too many wrong tokens from your address: try again in {wait} s.",
        )
        response.headers["Retry-After"] = str(wait)
        return response
    if not auth.matches(token.encode(), configured):
        door.failed(client, request.url.path)
        return _signed_out(request, ctx, 403, error="Wrong token.")
    response = _back(request)
    response.set_cookie(
        auth.SESSION_COOKIE,
        auth.start_session(ctx, configured, client),
        max_age=int(ctx.settings.admin_session_hours * 3600),
        path=_page_path(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    logger.info("admin sign-in", extra=logs.event("admin_sign_in"))
    return response


@router.post("/logout")
def logout(
    request: Request,
    ctx: Context,
    csrf: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """End the session on the server (its cookie opens nothing from now on) and
    drop the cookie. A live session is ended only with its CSRF value, as every
    other form; without one there is nothing to end, and the cookie is dropped."""
    session = _session(request, ctx)
    if session is not None:
        if not auth.csrf_valid(csrf, session, _csrf_key(ctx)):
            return _render(
                request,
                ctx,
                "message.html",
                403,
                message="Stale form: reload the page.",
            )
        auth.end_session(ctx, session)
    response = _back(request)
    response.delete_cookie(
        auth.SESSION_COOKIE,
        path=_page_path(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


Csrf = Annotated[str, Form(max_length=256)]
Back = Annotated[str | None, Form(max_length=2048)]
ScheduleId = Annotated[str, Path(max_length=128)]
RunId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _refused_form(request: Request, ctx: AdminContext, csrf: str) -> Response | None:
    """The answer to a POST without a live session (401) or with a stale CSRF
    value (403), or None when it may go on."""
    session = _session(request, ctx)
    token = auth.configured_token(ctx.settings)
    if session is None or token is None:
        return _signed_out(request, ctx, 401, error="Sign in first.")
    if not auth.csrf_valid(csrf, session, token):
        return _render(
            request, ctx, "message.html", 403, message="Stale form: reload the page."
        )
    return None


@router.get("/static/refresh.js", name="admin_ui_refresh_js")
def refresh_js() -> Response:
    return FileResponse(
        STATIC / "refresh.js",
        media_type="text/javascript",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )


def _wita_form_time(value: str, ctx: AdminContext) -> datetime:
    """A ``datetime-local`` field (``2026-12-24T09:00``), read in WITA."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise control.Refused(
            f"{value!r} is not a date and time: give e.g. 2026-12-24T09:00"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_wita(ctx))
    control.check_instant("the time", parsed)
    return parsed


@router.post("/{schedule_id}/run-at")
def run_at(
    request: Request,
    ctx: Context,
    schedule_id: ScheduleId,
    at: Annotated[str, Form(max_length=64)] = "",
    csrf: Csrf = "",
    back: Back = None,
) -> Response:
    refused = _refused_form(request, ctx, csrf)
    if refused is not None:
        return refused
    try:
        when = _wita_form_time(at, ctx)
        deferred = service.run_at(ctx, schedule_id, when, auth.actor(request), None)
    except (control.UnknownId, control.Refused, control.NotConfigured) as failure:
        return _back(request, back, error=str(failure))
    auth.audit(request, "admin_run_at", schedule_id, job_id=deferred.job_id)
    return _back(
        request,
        back,
        notice=f"{schedule_id}: job {deferred.job_id} will run at "
        f"{when.astimezone(_wita(ctx)):%Y-%m-%d %H:%M} WITA",
    )


@router.post("/{schedule_id}/edit")
def edit(
    request: Request,
    ctx: Context,
    schedule_id: ScheduleId,
    cron: Annotated[str, Form(max_length=256)] = "",
    zone: Annotated[str, Form(max_length=64)] = "",
    misfire_policy: Annotated[str, Form(max_length=16)] = "",
    timeout: Annotated[str, Form(max_length=64)] = "",
    preview: Annotated[str, Form(max_length=8)] = "",
    csrf: Csrf = "",
    back: Back = None,
) -> Response:
    """Change the schedule, or with ``preview`` show its next five runs under the
    new values and change nothing. Postgres's refusal is the page's error."""
    refused = _refused_form(request, ctx, csrf)
    if refused is not None:
        return refused
    values = {
        "cron": cron.strip() or None,
        "zone": zone.strip() or None,
        "misfire_policy": misfire_policy.strip() or None,
        "timeout": timeout.strip() or None,
        "dry_run": bool(preview),
    }
    try:
        # The JSON API's own model: the same checks (no control characters).
        change = schemas.ScheduleChangeIn.model_validate(values)
        changed = service.change_schedule(ctx, schedule_id, change, auth.actor(request))
    except pydantic.ValidationError as invalid:
        first = invalid.errors()[0]
        return _back(request, back, error=f"{first['loc'][0]}: {first['msg']}")
    except (control.UnknownId, control.Refused) as failure:
        return _back(request, back, error=str(failure))
    if change.dry_run:
        runs = ", ".join(
            f"{datetime.fromisoformat(run):%a %d %b %H:%M}"
            for run in changed.next_runs_wita
        )
        return _back(
            request,
            back,
            notice=f"Preview, nothing changed: {schedule_id} would run at "
            f"{runs} (WITA)",
        )
    auth.audit(request, "admin_change", schedule_id)
    return _back(request, back, notice=f"{schedule_id} changed")


@router.post("/runs/{run_id}/{action}")
def run_action(
    request: Request,
    ctx: Context,
    run_id: RunId,
    action: Literal["cancel", "retry"],
    csrf: Csrf = "",
    back: Back = None,
) -> Response:
    refused = _refused_form(request, ctx, csrf)
    if refused is not None:
        return refused
    try:
        if action == "cancel":
            cancelled = service.cancel_run(ctx, run_id, auth.actor(request), None)
            auth.audit(request, "admin_cancel", str(run_id))
            done = (
                "cancelled"
                if cancelled.outcome == "cancelled"
                else "stops at its next checkpoint"
            )
            return _back(request, back, notice=f"Run {run_id} {done}")
        retried = service.retry_run(ctx, run_id, auth.actor(request), None)
    except (control.UnknownId, control.Refused) as failure:
        return _back(request, back, error=str(failure))
    auth.audit(request, "admin_retry", str(run_id), new_job_id=retried.new_job_id)
    return _back(
        request, back, notice=f"Run {run_id} retried as job {retried.new_job_id}"
    )


@router.post("/{schedule_id}/{action}")
def act(
    request: Request,
    ctx: Context,
    schedule_id: ScheduleId,
    action: Literal["run", "pause", "resume", "reset"],
    csrf: Csrf = "",
    back: Back = None,
) -> Response:
    refused = _refused_form(request, ctx, csrf)
    if refused is not None:
        return refused
    try:
        if action == "run":
            deferred = service.run_now(ctx, schedule_id)
            auth.audit(request, "admin_run", schedule_id, job_id=deferred.job_id)
            return _back(
                request,
                back,
                notice=f"{schedule_id}: deferred as job {deferred.job_id}",
            )
        if action == "reset":
            service.reset_schedule(ctx, schedule_id, auth.actor(request), None)
        else:
            service.set_enabled(
                ctx, schedule_id, action == "resume", auth.actor(request)
            )
    except (
        control.UnknownId,
        control.AlreadyWaiting,
        control.NotConfigured,
        control.Refused,
    ) as failure:
        return _back(request, back, error=str(failure))
    auth.audit(request, f"admin_{action}", schedule_id)
    done = {"resume": "resumed", "pause": "paused", "reset": "reset to its declaration"}
    return _back(request, back, notice=f"{schedule_id} {done[action]}")


@router.get("/runs/{run_id}", name="admin_ui_run", response_class=HTMLResponse)
def run_page(
    request: Request,
    ctx: Context,
    run_id: RunId,
) -> Response:
    session = _session(request, ctx)
    if session is None:
        return _signed_out(request, ctx)
    detail = service.run_detail(ctx, run_id)
    if detail is None:
        return _render(request, ctx, "message.html", 404, message=f"No run {run_id}.")
    return _render(
        request,
        ctx,
        "run.html",
        run=detail,
        here=_here(request),
        csrf=_csrf(session, ctx),
    )


def _csrf_key(ctx: AdminContext) -> bytes:
    token = auth.configured_token(ctx.settings)
    assert token is not None  # a live session implies a token
    return token


def _csrf(session: str, ctx: AdminContext) -> str:
    return auth.csrf_value(session, _csrf_key(ctx))


HISTORY_PAGE = 25


@router.get(
    "/schedules/{schedule_id}", name="admin_ui_schedule", response_class=HTMLResponse
)
def schedule_page(
    request: Request,
    ctx: Context,
    schedule_id: ScheduleId,
    status_: Annotated[
        schemas.RunStatus | Literal[""] | None, Query(alias="status")
    ] = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    session = _session(request, ctx)
    if session is None:
        return _signed_out(request, ctx)
    now = datetime.now(UTC)
    try:
        page_data = pages.schedule_page(ctx, schedule_id, now)
    except control.UnknownId as unknown:
        return _render(request, ctx, "message.html", 404, message=str(unknown))
    filter_error = None
    history = None
    try:
        history = service.list_runs(
            ctx,
            job=page_data.row["task_name"],
            status=status_ or None,
            since=_wita_form_time(since, ctx) if since else None,
            until=_wita_form_time(until, ctx) if until else None,
            cursor=cursor,
            limit=HISTORY_PAGE,
        )
    except (service.BadFilter, control.Refused) as bad:
        filter_error = str(bad)
    return _render(
        request,
        ctx,
        "schedule.html",
        page=page_data,
        s=page_data.entry,
        history=history,
        filters={"status": status_ or "", "since": since or "", "until": until or ""},
        filter_error=filter_error,
        statuses=list(get_args(schemas.RunStatus)),
        chart=chart.durations_svg(page_data.recent, _wita(ctx)),
        words=formats.cron_words(page_data.row["cron"]),
        declared_words=formats.cron_words(page_data.row["declared_cron"])
        if page_data.row.get("declared_cron")
        else None,
        here=_here(request),
        csrf=_csrf(session, ctx),
    )


@router.get("/queues", name="admin_ui_queues", response_class=HTMLResponse)
def queues_page(
    request: Request,
    ctx: Context,
) -> Response:
    session = _session(request, ctx)
    if session is None:
        return _signed_out(request, ctx)
    return _render(
        request,
        ctx,
        "queues.html",
        page=pages.queues_page(ctx),
        csrf=_csrf(session, ctx),
    )
