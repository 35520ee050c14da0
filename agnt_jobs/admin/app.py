"""The admin view as an application of its own, for ``agnt-jobs admin``: the router,
its OpenAPI schema at ``/admin/scheduler/openapi.json``, and a database that cannot
be reached answered as 503 instead of a bare 500."""

from __future__ import annotations

import logging

import psycopg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse

from agnt_jobs import logs
from agnt_jobs.admin.context import AdminContext, get_context
from agnt_jobs.admin.router import router

logger = logging.getLogger(__name__)


def create_app(context: AdminContext | None = None) -> FastAPI:
    """The standalone admin app; ``context`` replaces the process's App, engine and
    settings (tests, or a deployment that builds its own)."""
    app = FastAPI(
        title="agnt-jobs admin",
        summary="The AGNT schedule registry, run history and manual control.",
        version="1",
        openapi_url="/admin/scheduler/openapi.json",
        # The interactive docs load their scripts from a CDN: left out.
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(router)
    if context is not None:
        app.dependency_overrides[get_context] = lambda: context

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/admin/scheduler/ui")

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
