"""``agnt-jobs admin``: serve the admin view (``agnt_jobs.admin``) with uvicorn."""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Annotated

import typer

from agnt_jobs import logs
from agnt_jobs.settings import get_settings

logger = logging.getLogger(__name__)


def admin(
    host: Annotated[
        str, typer.Option(help="Interface to listen on (0.0.0.0: every one).")
    ] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="TCP port (default AGNT_ADMIN_PORT)."),
    ] = None,
) -> None:
    """Serve the admin view: GET /admin/scheduler (JSON) and /admin/scheduler/ui.

    Every request needs INTERNAL_API_TOKEN (X-Internal-Token, or the page's
    sign-in); without it set, every request is refused with 503. Stops on
    SIGTERM/SIGINT.
    """
    import uvicorn

    from agnt_jobs.admin import create_app
    from agnt_jobs.admin.app import server_options
    from agnt_jobs.admin.auth import configured_token, weak_token
    from agnt_jobs.cli.common import UsageError, ensure_migrated, setup_logging

    setup_logging()
    weak = weak_token(get_settings())
    if weak is not None:
        raise UsageError(weak)
    ensure_migrated()
    if port is None:
        port = get_settings().admin_port
    if configured_token(get_settings()) is None:
        logger.warning(
            "INTERNAL_API_TOKEN is not set: the admin view refuses every request",
            extra=logs.event("admin_token_missing"),
        )
    logger.info(
        f"admin view on http://{host}:{port}/admin/scheduler/ui",
        extra=logs.event("admin_start", host=host, port=port),
    )
    # uvicorn finishes the requests in flight on SIGTERM, then raises the signal
    # again with the previous handler in place: this one makes that exit 0, as a
    # stopped worker does.
    signal.signal(signal.SIGTERM, _stopped)
    # Its access log holds paths only; the token travels in a header or a form
    # body, never a URL.
    uvicorn.run(create_app(), host=host, port=port, **server_options(get_settings()))


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def install(cli: typer.Typer) -> None:
    cli.command("admin")(admin)
