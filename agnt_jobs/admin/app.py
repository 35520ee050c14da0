"""The admin view as an application of its own, for ``agnt-jobs admin``: the router
(the pages and the JSON API, which a backend may mount instead),
``GET /metrics`` for Prometheus, its OpenAPI schema at
``/admin/scheduler/openapi.json`` (behind the token, as every other route), the
probes ``/livez`` and ``/readyz`` (without), an access log of paths without their
query strings, and a database that cannot be reached answered as 503 instead of a
bare 500; and how a server serves it (``server_options``): which proxies'
forwarded headers it believes."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import psycopg
import sqlalchemy.exc
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy.engine import Engine

from agnt_jobs import logs, tracing
from agnt_jobs.admin import api, errors, metrics, ui
from agnt_jobs.admin.auth import require_token
from agnt_jobs.admin.context import AdminContext, get_context
from agnt_jobs.db import migrate
from agnt_jobs.scheduler import probes
from agnt_jobs.settings import Settings

logger = logging.getLogger(__name__)

# What a backend mounts: the pages and the JSON API, every request's text checked
# before a route reads it. The pages first: their fixed paths (/ui/login) must win
# over the API's /{schedule_id}/run.
router = APIRouter(
    route_class=errors.AdminRoute, dependencies=[Depends(errors.readable_text)]
)
router.include_router(ui.router)
router.include_router(api.router)


def create_app(context: AdminContext | None = None) -> FastAPI:
    """The standalone admin app; ``context`` replaces the process's App, engine and
    settings (tests, or a deployment that builds its own)."""
    app = FastAPI(
        title="agnt-jobs admin",
        summary="The AGNT schedule registry, run history and manual control.",
        version="1",
        # Served below, behind the token: the schema maps the door.
        openapi_url=None,
        # The interactive docs load their scripts from a CDN: left out.
        docs_url=None,
        redoc_url=None,
    )
    # With the OTEL_* variables set, a run now or at a time is a span its run
    # continues.
    tracing.configure()
    app.include_router(router)
    app.include_router(metrics.router)
    _access_log_without_queries()

    @app.get(
        "/admin/scheduler/openapi.json",
        include_in_schema=False,
        dependencies=[Depends(require_token)],
    )
    def openapi() -> dict[str, Any]:
        return app.openapi()

    if context is not None:
        app.dependency_overrides[get_context] = lambda: context

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/admin/scheduler/ui")

    _probes(app)

    @app.exception_handler(sqlalchemy.exc.OperationalError)
    @app.exception_handler(psycopg.OperationalError)
    async def database_down(request: Request, error: Exception) -> JSONResponse:
        logger.error(
            "the job database cannot be reached",
            extra=logs.event("admin_database_error", path=request.url.path),
        )
        return JSONResponse(
            {"detail": "the job database cannot be reached; try again"}, 503
        )

    return app


def _probes(app: FastAPI) -> None:
    """``/livez`` (the process serves) and ``/readyz`` (the job database answers
    at the code's schema revision), as a worker's probe port answers them, with no
    token: an orchestrator's probe carries none. They say no more than that: a
    driver's reason (hosts, users) goes to the log, not to whoever asks."""

    @app.get("/livez", include_in_schema=False)
    def livez() -> JSONResponse:
        status, body = probes.answer(None)
        return JSONResponse(body, status, headers=NO_STORE)

    @app.get("/readyz", include_in_schema=False)
    async def readyz(context: AdminContext = Depends(get_context)) -> JSONResponse:
        async def query_one(query: str) -> dict[str, Any]:
            return await asyncio.to_thread(_query_one, context.engine, query)

        try:
            current = await probes.schema_revision(query_one)
        except probes.DatabaseUnanswered as unanswered:
            logger.warning(
                f"readiness: {unanswered}",
                extra=logs.event("admin_not_ready", reason=str(unanswered)),
            )
            problem: str | None = str(unanswered).split(": ", 1)[0]
        else:
            problem = migrate.behind(current, _head())
        status, body = probes.answer(problem)
        return JSONResponse(body, status, headers=NO_STORE)


NO_STORE = {"Cache-Control": "no-store"}

_head = functools.cache(migrate.head_revision)


def _query_one(engine: Engine, query: str) -> dict[str, Any]:
    with engine.connect() as connection:
        return dict(connection.exec_driver_sql(query).mappings().one())


class _PathsOnly(logging.Filter):
    """uvicorn's access line without the query string: a token someone put in a
    URL by mistake must not reach the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def _access_log_without_queries() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _PathsOnly) for f in access.filters):
        access.addFilter(_PathsOnly())


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for serving the admin view (``uvicorn.run`` and
    ``uvicorn.Config`` take them alike). The client address (the throttle's, the
    audit's and the access log's) is the connection's, or what a proxy of
    AGNT_ADMIN_TRUSTED_PROXIES forwarded: uvicorn would otherwise believe
    X-Forwarded-For from 127.0.0.1, so that any client on the same host could
    name its own address."""
    trusted = settings.trusted_proxies()
    return {
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted,
        # uvicorn's loggers go through ours (JSON).
        "log_config": None,
    }
