"""The ``agnt-jobs`` command: each command is a thin call into the package.

Every error an operator can cause (a bad setting, an unreachable database, an unknown
id) ends as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from agnt_jobs import tracing
from agnt_jobs.cli import (
    admin,
    bench,
    db,
    demo,
    healthcheck,
    schedules,
    settings,
    worker,
)
from agnt_jobs.cli.common import UsageError
from agnt_jobs.db.outage import SERVER_FULL_ADVICE, is_server_full
from agnt_jobs.db.url import CONNECT_ERRORS, Unreachable
from agnt_jobs.scheduler.declaration import ScheduleError
from agnt_jobs.settings import ConfigError

cli = typer.Typer(
    help="agnt-jobs: the AGNT platform's scheduled jobs on a Postgres queue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for command in (db, worker, healthcheck, schedules, admin, demo, bench, settings):
    command.install(cli)


def main() -> None:
    # With the OTEL_* variables set, a command that defers (run, retry) is a span
    # its run continues.
    tracing.configure()
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
    except ScheduleError as error:
        # Raised while importing the App: a declaration in periodic/ is malformed.
        typer.echo(f"agnt-jobs: {error}: fix its declaration in periodic/", err=True)
        sys.exit(2)
    except Unreachable as error:
        typer.echo(f"agnt-jobs: {error}", err=True)
        sys.exit(1)
    except CONNECT_ERRORS as error:
        if is_server_full(error):
            reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
            typer.echo(f"agnt-jobs: {reason}: {SERVER_FULL_ADVICE}", err=True)
            sys.exit(1)
        typer.echo(f"agnt-jobs: {Unreachable.because(error)}", err=True)
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
