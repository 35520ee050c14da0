"""``agnt-jobs db ...``: create and migrate the job database (Alembic).

On the embedded default these commands see the schema as it is: nothing migrates it
to head on the way in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agnt_jobs.cli.common import UsageError, database_url, generated_page

db_cli = typer.Typer(help="Create and migrate the job database (Alembic).")


@db_cli.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the database up to REVISION (default: head)."""
    from agnt_jobs.db import migrate, session_url

    # Migrating holds a session advisory lock: straight to Postgres behind PgBouncer.
    url = session_url(migrate=False)
    migrate.upgrade(url, revision)
    typer.echo(f"database at {migrate.current_revision(url)}")


@db_cli.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. base.")],
) -> None:
    """Migrate the database down to REVISION ('base' empties it)."""
    from agnt_jobs.db import migrate, session_url

    # Migrating holds a session advisory lock: straight to Postgres behind PgBouncer.
    url = session_url(migrate=False)
    migrate.downgrade(url, revision)
    typer.echo(f"database at {migrate.current_revision(url) or 'base'}")


@db_cli.command("current")
def db_current() -> None:
    """Print the database's revision and the code's head; exit 1 if they differ."""
    from agnt_jobs.db import migrate

    current = migrate.current_revision(database_url(migrate=False))
    head = migrate.head_revision()
    typer.echo(f"database: {current or 'base (empty)'}\ncode head: {head}")
    if current != head:
        raise typer.Exit(1)


@db_cli.command("schema")
def db_schema(
    write: Annotated[
        bool, typer.Option("--write", help="Write docs/schema.sql.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if docs/schema.sql is not current.")
    ] = False,
) -> None:
    """Print docs/schema.sql: the schema the migrations build, read back from a
    scratch database migrated to head on the configured server (which needs the
    right to create databases; the configured database is not touched)."""
    from agnt_jobs.db import live_schema, session_url

    if write and check:
        raise UsageError("--write and --check exclude each other")
    # CREATE DATABASE cannot run through PgBouncer's transaction pooling.
    generated_page(
        Path(live_schema.DOC_PATH),
        live_schema.generate(session_url(migrate=False)),
        source="the migrations",
        command=live_schema.COMMAND,
        write=write,
        check=check,
    )


def install(cli: typer.Typer) -> None:
    cli.add_typer(db_cli, name="db")
