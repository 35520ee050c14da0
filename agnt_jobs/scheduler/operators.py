"""What an operator's request carries into the database, for schedule control and
run control alike: who acts (``Actor``; ``acting`` names them for the audit rows a
transaction writes), and the database's one line when it refuses the request."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
import sqlalchemy.exc

from agnt_jobs.scheduler.deploy import SQL


@dataclass(frozen=True)
class Actor:
    """Who changes a schedule or acts on a run, for its audit row: ``source`` is
    cli or admin."""

    by: str
    source: str


def acting(connection: sa.Connection, actor: Actor) -> None:
    """Name who acts for the rest of ``connection``'s transaction: the trigger
    writes it in ``schedule_changes``."""
    connection.exec_driver_sql(
        SQL["acting"], {"changed_by": actor.by, "source": actor.source}
    )


def refused_by_database(error: sqlalchemy.exc.DBAPIError) -> str:
    """The database's one-line reason for refusing a request."""
    reason = getattr(error.orig, "diag", None)
    text = getattr(reason, "message_primary", None) or str(error.orig)
    return text.strip().splitlines()[0]
