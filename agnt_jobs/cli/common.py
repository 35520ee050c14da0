"""What every ``agnt-jobs`` command shares: the operator's error (exit 2), logging
set up from the settings, the database URL, and the check that the schema is the
code's."""

from __future__ import annotations

from agnt_jobs import logs
from agnt_jobs.errors import Invalid
from agnt_jobs.settings import get_settings


class UsageError(Invalid):
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
