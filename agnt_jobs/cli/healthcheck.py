"""``agnt-jobs healthcheck``: the worker probes' answers for an exec probe (or a
systemd or Docker health check) run beside a worker, read from the database: the
heartbeat row of this host's worker (``schedule_workers.hostname``) and the schema
revision. Exit 0 and one line when healthy, exit 1 and one line saying why not."""

from __future__ import annotations

import asyncio
import socket
from typing import Annotated, Any

import typer

from agnt_jobs.cli.common import database_url
from agnt_jobs.settings import get_settings


def healthcheck(
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Liveness only: this host's worker sent a recent heartbeat. A "
            "database that cannot be reached is not judged (exit 0): a worker "
            "outlives its database.",
        ),
    ] = False,
) -> None:
    """Is this host's worker ready (the default) or live (--live)?

    Ready: the database answers at the code's schema revision and a worker of this
    host sent a heartbeat within AGNT_STALLED_WORKER_SECONDS. Live: that heartbeat.
    Exit 0 if so, 1 if not, each with one line.
    """
    from agnt_jobs.db.url import conninfo
    from agnt_jobs.scheduler.probes import DatabaseUnanswered

    url = conninfo(database_url(migrate=False))
    try:
        problem, said = asyncio.run(_check(url, live))
    except DatabaseUnanswered as unreachable:
        if not live:
            problem, said = str(unreachable), ""
        else:
            problem, said = None, f"live: not judged, {unreachable}"
    if problem is not None:
        state = "not live" if live else "not ready"
        typer.echo(f"agnt-jobs: {state}: {problem}", err=True)
        raise typer.Exit(1)
    typer.echo(said)


async def _check(url: str, live: bool) -> tuple[str | None, str]:
    import psycopg
    from psycopg.rows import dict_row

    from agnt_jobs.db import migrate
    from agnt_jobs.db.queries import load
    from agnt_jobs.scheduler.probes import DatabaseUnanswered, schema_revision

    try:
        connection = await psycopg.AsyncConnection.connect(
            url, autocommit=True, row_factory=dict_row
        )
    except psycopg.OperationalError as error:
        raise DatabaseUnanswered(_unreachable(error)) from None
    async with connection:

        async def query_one(query: str) -> dict[str, Any]:
            rows = await _rows(connection, query, {})
            row: dict[str, Any] = rows[0]
            return row

        schema = migrate.behind(
            await schema_revision(query_one), migrate.head_revision()
        )
        if schema is not None and not live:
            return schema, ""
        host = socket.gethostname()
        query = load("scheduling.sql")["host_workers"]
        try:
            workers = await _rows(connection, query, {"hostname": host})
        except psycopg.OperationalError as error:
            raise DatabaseUnanswered(_unreachable(error)) from None
    if not workers:
        return f"no worker of host {host} is registered", ""
    worker_id, age = workers[0]["worker_id"], workers[0]["heartbeat_age"]
    stalled = get_settings().stalled_worker_seconds
    if age > stalled:
        return (
            f"worker {worker_id} of host {host} sent its last heartbeat {age:.0f} s "
            f"ago (stalled after AGNT_STALLED_WORKER_SECONDS={stalled:g})",
            "",
        )
    state = "live" if live else "ready"
    return (
        None,
        f"{state}: worker {worker_id} of host {host}, heartbeat {age:.1f} s ago",
    )


async def _rows(connection: Any, query: str, arguments: dict[str, Any]) -> list[Any]:
    cursor = await connection.execute(query, arguments)
    rows: list[Any] = await cursor.fetchall()
    return rows


def _unreachable(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"the database cannot be reached: {text[0] if text else repr(error)}"


def install(cli: typer.Typer) -> None:
    cli.command("healthcheck")(healthcheck)
