"""``agnt-jobs worker``: the App's worker, with our logging and the schema check."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

import typer

from agnt_jobs import logs
from agnt_jobs.cli.common import UsageError, ensure_migrated, setup_logging
from agnt_jobs.settings import get_settings

logger = logging.getLogger(__name__)


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Jobs run at once (default AGNT_WORKER_CONCURRENCY)."),
    ] = None,
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", "-q", help="Only these queues (repeatable)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Worker name in logs.")] = None,
    admin: Annotated[
        bool,
        typer.Option(
            "--admin",
            help="Also serve the admin page on 127.0.0.1:AGNT_ADMIN_PORT (make run).",
        ),
    ] = False,
) -> None:
    """Run a worker until SIGTERM/SIGINT; running jobs finish, then it exits 0.

    Past AGNT_SHUTDOWN_GRACEFUL_TIMEOUT each job still running is stopped (its
    statement cancelled) and put back in the queue; a second signal does that at
    once and exits 1.

    With --admin the same process serves the admin page. On the embedded database
    (no AGNT_DATABASE_URL) and with no INTERNAL_API_TOKEN, a random token is made
    for the data directory, kept there (mode 0600) and printed the first time.
    """
    setup_logging()
    # First: a token too weak to serve the page with is refused before anything;
    # then the code's declarations (importing the App checks each one as Postgres
    # would), before the database is touched.
    address = admin_sign_in() if admin else None
    from agnt_jobs.app import app

    _wait_for_a_connection(ensure_migrated)
    options: dict[str, Any] = {}
    if concurrency is not None:
        options["concurrency"] = concurrency
    if queue:
        options["queues"] = queue
    if name:
        options["name"] = name
    logger.info("worker starting", extra=logs.event("agnt_worker_start", **options))
    if address is not None:
        _run_with_admin(options, *address)
        return
    app.run_worker(install_signal_handlers=True, **options)


def _wait_for_a_connection(check: Callable[[], None]) -> None:
    """Run the start-up ``check``, waiting while the server is full: a fleet
    larger than the server's connections starts its workers as slots free up,
    none of them exits for it (a wrong URL or a database that is not there
    still fails at once)."""
    from agnt_jobs.db.outage import Backoff, Outage, waiting_while_full

    settings = get_settings()
    waiting_while_full(
        check,
        where="start",
        outage=Outage(
            settings.db_outage_report_seconds, settings.database_outage_limit_seconds
        ),
        backoff=Backoff(
            settings.db_retry_initial_seconds, settings.db_retry_max_seconds
        ),
    )


def _run_with_admin(options: dict[str, Any], host: str, port: int) -> None:
    import asyncio

    from agnt_jobs.admin.beside import run_worker_and_admin

    asyncio.run(run_worker_and_admin(host, port, **options))


def admin_sign_in() -> tuple[str, int]:
    """Where the admin page of a one-process run listens, said on stderr with how
    to sign in; on the embedded database with no token, the data directory's own
    token is made (the first time, and printed then) and used."""
    import os

    from agnt_jobs.admin.auth import (
        LOCAL_TOKEN_FILE,
        configured_token,
        local_token,
        weak_token,
    )

    settings = get_settings()
    weak = weak_token(settings)
    if weak is not None:
        raise UsageError(weak)
    host, port = "127.0.0.1", settings.admin_port
    url = f"http://{host}:{port}/admin/scheduler/ui"
    if configured_token(settings) is not None:
        typer.echo(f"admin page: {url} (sign in with INTERNAL_API_TOKEN)", err=True)
    elif settings.database_url is not None:
        typer.echo(
            f"admin page: {url}, but INTERNAL_API_TOKEN is not set: it refuses "
            "every request until it is",
            err=True,
        )
    else:
        token, made = local_token(settings.data_dir)
        os.environ["INTERNAL_API_TOKEN"] = token
        get_settings.cache_clear()
        where = settings.data_dir / LOCAL_TOKEN_FILE
        typer.echo(f"admin page: {url} (sign in with the token in {where})", err=True)
        if made:
            typer.echo(f"admin token, made for this data directory: {token}", err=True)
    return host, port


def install(cli: typer.Typer) -> None:
    cli.command("worker")(worker)
