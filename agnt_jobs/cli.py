"""The ``agnt-jobs`` command: each command is a thin call into the package.

Every error an operator can cause (a bad setting, an unreachable database, an unknown
id) ends as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
import sqlalchemy.exc
import typer

from agnt_jobs import cli_admin, cli_bench, cli_schedules, logs
from agnt_jobs.settings import ConfigError, get_settings

cli = typer.Typer(
    help="agnt-jobs: the AGNT platform's scheduled jobs on a Postgres queue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="Create and migrate the job database (Alembic).")
cli.add_typer(db_cli, name="db")
demo_cli = typer.Typer(help="Demo data: watch the jobs work, give benchmarks data.")
cli.add_typer(demo_cli, name="demo")

logger = logging.getLogger(__name__)


class UsageError(Exception):
    """Bad input from the operator: exit 2 with the message."""


def _url() -> str:
    from agnt_jobs.db import database_url

    return database_url()


def _schema_url() -> str:
    """The database URL for the ``db`` commands: on the embedded default they see
    the schema as it is, not one migrated to head on the way in."""
    from agnt_jobs.db import database_url

    return database_url(migrate=False)


def _setup_logging() -> None:
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)


@db_cli.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the database up to REVISION (default: head)."""
    from agnt_jobs import migrate

    migrate.upgrade(_schema_url(), revision)
    typer.echo(f"database at {migrate.current_revision(_schema_url())}")


@db_cli.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. base.")],
) -> None:
    """Migrate the database down to REVISION ('base' empties it)."""
    from agnt_jobs import migrate

    migrate.downgrade(_schema_url(), revision)
    typer.echo(f"database at {migrate.current_revision(_schema_url()) or 'base'}")


@db_cli.command("current")
def db_current() -> None:
    """Print the database's revision and the code's head; exit 1 if they differ."""
    from agnt_jobs import migrate

    current, head = migrate.current_revision(_schema_url()), migrate.head_revision()
    typer.echo(f"database: {current or 'base (empty)'}\ncode head: {head}")
    if current != head:
        raise typer.Exit(1)


def ensure_migrated() -> None:
    from agnt_jobs import migrate

    current, head = migrate.current_revision(_url()), migrate.head_revision()
    if current != head:
        raise ConfigError(
            f"the database is at revision {current or 'base'} but this code needs "
            f"{head}: run 'agnt-jobs db upgrade'"
        )


@cli.command("worker")
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
    _setup_logging()
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


cli_schedules.install(cli)
cli_admin.install(cli)
cli_bench.install(cli)


def _instant(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--at {value!r} is not an ISO 8601 instant") from None
    if instant.tzinfo is None:
        raise UsageError(f"--at {value!r} needs a zone, e.g. {value}+08:00")
    return instant.astimezone(UTC)


@demo_cli.command("seed")
def demo_seed(
    scale: Annotated[
        int,
        typer.Option(min=1, help="Size: 1 is 10,000 bookings; 100 about a million."),
    ] = 1,
    at: Annotated[
        str | None,
        typer.Option(
            help="ISO instant the data is built around (default: now). The same "
            "scale and instant give the same data."
        ),
    ] = None,
    agent_url: Annotated[
        str, typer.Option(help="Base URL of the venues' A2A agent endpoints.")
    ] = "http://127.0.0.1:8790",
    webhook_url: Annotated[
        str,
        typer.Option(help="Base URL of the seeded outbound webhook endpoints."),
    ] = "http://127.0.0.1:8791",
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Seed a database that has data: adds a second data set."
        ),
    ] = False,
) -> None:
    """Fill an empty database with a realistic, deterministic data set."""
    _setup_logging()
    instant = _instant(at)
    ensure_migrated()
    from agnt_jobs import db, demo

    settings = get_settings()
    plan = demo.Plan(
        scale=scale,
        at=instant,
        tz=settings.business_timezone,
        agent_url=agent_url,
        webhook_url=webhook_url,
    )
    started = time.perf_counter()
    try:
        reports = demo.seed(db.engine(), plan, force=force)
    except demo.NotEmptyError as error:
        raise UsageError(str(error)) from None
    for report in reports:
        rows = ", ".join(f"{table} {count:,}" for table, count in report.rows.items())
        typer.echo(f"{report.seeder}: {rows} ({report.seconds:.1f} s)")
    typer.echo(
        f"demo data at scale {scale} around {plan.at.isoformat()} "
        f"in {time.perf_counter() - started:.1f} s"
    )


def main() -> None:
    try:
        # Without standalone mode, click returns a command's typer.Exit code
        # instead of raising it.
        code = cli(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except (ConfigError, UsageError) as error:
        typer.echo(f"agnt-jobs: {error}", err=True)
        sys.exit(2)
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as error:
        reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
        typer.echo(
            f"agnt-jobs: cannot reach the database ({reason}): check AGNT_DATABASE_URL",
            err=True,
        )
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        # Usage errors (unknown command, missing argument) are click exceptions;
        # recent typer vendors its own click, so recognise them by their interface.
        format_message = getattr(error, "format_message", None)
        exit_code = getattr(error, "exit_code", None)
        if callable(format_message) and isinstance(exit_code, int):
            typer.echo(
                f"agnt-jobs: {format_message()} Run 'agnt-jobs --help'.", err=True
            )
            sys.exit(exit_code)
        raise
