"""The ``agnt-jobs`` command: each command is a thin call into the package.

Every error an operator can cause (a bad setting, an unreachable database, an unknown
id) ends as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import psycopg
import sqlalchemy.exc
import typer

from agnt_jobs import cli_bench, cli_schedules, logs
from agnt_jobs.settings import ConfigError, get_settings

cli = typer.Typer(
    help="agnt-jobs: the AGNT platform's scheduled jobs on a Postgres queue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="Create and migrate the job database (Alembic).")
cli.add_typer(db_cli, name="db")

logger = logging.getLogger(__name__)


class UsageError(Exception):
    """Bad input from the operator: exit 2 with the message."""


def _url() -> str:
    from agnt_jobs.db import database_url

    return database_url()


def _setup_logging() -> None:
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)


@db_cli.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the database up to REVISION (default: head)."""
    from agnt_jobs import migrate

    migrate.upgrade(_url(), revision)
    typer.echo(f"database at {migrate.current_revision(_url())}")


@db_cli.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. base.")],
) -> None:
    """Migrate the database down to REVISION ('base' empties it)."""
    from agnt_jobs import migrate

    migrate.downgrade(_url(), revision)
    typer.echo(f"database at {migrate.current_revision(_url()) or 'base'}")


@db_cli.command("current")
def db_current() -> None:
    """Print the database's revision and the code's head; exit 1 if they differ."""
    from agnt_jobs import migrate

    current, head = migrate.current_revision(_url()), migrate.head_revision()
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
    logger.info("worker starting", extra={"action": "agnt_worker_start", **options})
    app.run_worker(**options)


cli_schedules.install(cli)
cli_bench.install(cli)


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
