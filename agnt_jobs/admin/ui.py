"""The admin page for people, server-rendered (Jinja2, no JavaScript): the registry
with coloured health and next runs in WITA, a 24-hour timeline of each job's runs,
the newest failures, one run's detail, and buttons to run, pause and resume.

Sign-in posts the token once and gets a signed session cookie (``auth``); every
POST from the page carries the session's CSRF value. After an action the browser
is sent back to the page (303) with a one-line notice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Path, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from agnt_jobs import logs
from agnt_jobs.admin import auth, service, timeline
from agnt_jobs.admin.context import AdminContext, get_context
from agnt_jobs.scheduler import control

logger = logging.getLogger(__name__)

templates = Jinja2Templates(directory=FilePath(__file__).parent / "templates")

# Forms post to this origin only, nothing loads from elsewhere, no script runs.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(prefix="/admin/scheduler/ui", include_in_schema=False)
Context = Annotated[AdminContext, Depends(get_context)]


def _wita(ctx: AdminContext) -> ZoneInfo:
    return ZoneInfo(ctx.settings.business_timezone)


def _local(value: datetime | None, zone: ZoneInfo, seconds: bool = False) -> str:
    if value is None:
        return "-"
    return value.astimezone(zone).strftime(
        "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    )


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
            "zone_name": ctx.settings.business_timezone,
            "local": lambda value, seconds=False: _local(value, zone, seconds),
            **context,
        },
        status_code=status_code,
        headers=HEADERS,
    )


def _page_path(request: Request) -> str:
    return request.url_for("admin_ui").path


def _back(request: Request, **message: str) -> RedirectResponse:
    query = f"?{urlencode(message)}" if message else ""
    return RedirectResponse(
        _page_path(request) + query, status_code=status.HTTP_303_SEE_OTHER
    )


def _session(request: Request, ctx: AdminContext) -> str | None:
    """The request's live session cookie, or None."""
    value = request.cookies.get(auth.SESSION_COOKIE)
    return value if auth.session_live(ctx, value) else None


def _signed_out(request: Request, ctx: AdminContext, code: int = 200, **kw: Any):
    reason = auth.closed(ctx.settings)
    if reason is not None:
        return _render(request, ctx, "message.html", 503, message=reason)
    return _render(request, ctx, "login.html", code, **kw)


@router.get("", name="admin_ui", response_class=HTMLResponse)
def page(
    request: Request,
    ctx: Context,
    notice: str | None = None,
    error: str | None = None,
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
        registry=service.registry(ctx, now),
        timeline=timeline.timeline(ctx, now),
        failures=timeline.recent_failures(ctx),
        csrf=auth.csrf_value(session, token),
        notice=notice,
        error=error,
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
def logout(request: Request, ctx: Context) -> Response:
    # No CSRF check: signing someone out is harmless, and a stale page must work.
    auth.end_session(ctx, request.cookies.get(auth.SESSION_COOKIE))
    response = _back(request)
    response.delete_cookie(
        auth.SESSION_COOKIE,
        path=_page_path(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/{schedule_id}/{action}")
def act(
    request: Request,
    ctx: Context,
    schedule_id: Annotated[str, Path(max_length=128)],
    action: Literal["run", "pause", "resume"],
    csrf: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    session = _session(request, ctx)
    token = auth.configured_token(ctx.settings)
    if session is None or token is None:
        return _signed_out(request, ctx, 401, error="Sign in first.")
    if not auth.csrf_valid(csrf, session, token):
        return _render(
            request, ctx, "message.html", 403, message="Stale form: reload the page."
        )
    try:
        if action == "run":
            deferred = service.run_now(ctx, schedule_id)
            auth.audit(request, "admin_run", schedule_id, job_id=deferred.job_id)
            return _back(
                request, notice=f"{schedule_id}: deferred as job {deferred.job_id}"
            )
        service.set_enabled(ctx, schedule_id, action == "resume", auth.actor(request))
    except (
        control.UnknownId,
        control.AlreadyWaiting,
        control.NotConfigured,
    ) as failure:
        return _back(request, error=str(failure))
    auth.audit(request, f"admin_{action}", schedule_id)
    done = "resumed" if action == "resume" else "paused"
    return _back(request, notice=f"{schedule_id} {done}")


@router.get("/runs/{run_id}", name="admin_ui_run", response_class=HTMLResponse)
def run_page(
    request: Request,
    ctx: Context,
    run_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
) -> Response:
    if _session(request, ctx) is None:
        return _signed_out(request, ctx)
    detail = service.run_detail(ctx, run_id)
    if detail is None:
        return _render(request, ctx, "message.html", 404, message=f"No run {run_id}.")
    return _render(request, ctx, "run.html", run=detail)
