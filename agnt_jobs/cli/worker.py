"""``agnt-jobs worker``: the App's worker, with our logging and the schema check."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer

from agnt_jobs import logs
from agnt_jobs.cli.common import ensure_migrated, setup_logging

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
) -> None:
    """Run a worker until SIGTERM/SIGINT; running jobs finish, then it exits 0."""
    setup_logging()
    ensure_migrated()
    from agnt_jobs.app import app

    options: dict[str, Any] = {"install_signal_handlers": True}
    if concurrency is not None:
        options["concurrency"] = concurrency
    if queue:
        options["queues"] = queue
    if name:
        options["name"] = name
    logger.info("worker starting", extra=logs.event("agnt_worker_start", **options))
    app.run_worker(**options)


def install(cli: typer.Typer) -> None:
    cli.command("worker")(worker)
