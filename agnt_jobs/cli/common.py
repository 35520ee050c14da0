"""What every ``agnt-jobs`` command shares: the operator's error (exit 2), logging
set up from the settings, the database URL, the check that the schema is the
code's, and the printing, writing or checking of a generated page of the manual."""

from __future__ import annotations

from pathlib import Path

import typer

from agnt_jobs import logs
from agnt_jobs.settings import get_settings


class UsageError(Exception):
    """Bad input from the operator: exit 2 with the message."""


def database_url(*, migrate: bool = True) -> str:
    """The job database's URL (imported late: ``--help`` needs no database code).
    The ``db`` commands ask with ``migrate=False``: on the embedded default they must
    see the schema as it is, not one migrated to head on the way in."""
    from agnt_jobs import db

    return db.database_url(migrate=migrate)


def setup_logging() -> None:
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)


def ensure_migrated() -> None:
    from agnt_jobs.db import migrate

    migrate.check_current(database_url())


def generated_page(
    path: Path, text: str, *, source: str, command: str, write: bool, check: bool
) -> None:
    """Print ``text``; with ``write``, write it to ``path``; with ``check``, exit 1
    when ``path`` holds anything else (``source``: what the page is made from)."""
    if write and check:
        raise UsageError("--write and --check exclude each other")
    if write:
        path.write_text(text)
        typer.echo(f"wrote {path}")
    elif check:
        if not path.exists() or path.read_text() != text:
            typer.echo(
                f"agnt-jobs: {path} differs from {source}: run '{command}'", err=True
            )
            raise typer.Exit(1)
        typer.echo(f"{path} is current")
    else:
        typer.echo(text, nl=False)
