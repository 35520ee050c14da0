"""``agnt-jobs db ...``: create and migrate the job database (Alembic).

On the embedded default these commands see the schema as it is: nothing migrates it
to head on the way in."""

from __future__ import annotations

from typing import Annotated

import typer

from agnt_jobs.cli.common import database_url

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


def install(cli: typer.Typer) -> None:
    cli.add_typer(db_cli, name="db")
