"""Where the database is, and how to talk to it: the URL, the SQLAlchemy engine, and
the embedded Postgres that stands in when no URL is configured."""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from sqlalchemy.engine import Engine

from agnt_jobs.db import embedded, inflight
from agnt_jobs.db.budget import budget
from agnt_jobs.db.url import conninfo, create_engine, redact
from agnt_jobs.settings import get_settings

__all__ = [
    "conninfo",
    "create_engine",
    "database_url",
    "engine",
    "redact",
    "session_url",
]

_lock = threading.Lock()
_embedded_url: str | None = None
_embedded_migrated = False


def database_url(*, migrate: bool = True) -> str:
    """The libpq URL of the job database.

    With ``AGNT_DATABASE_URL`` set, that URL, untouched: production migrates explicitly
    (``agnt-jobs db upgrade``). Unset, an embedded Postgres in ``AGNT_DATA_DIR`` is
    started (or joined, if another process of ours already runs it) and, unless
    ``migrate`` is false, migrated to head, so a fresh checkout works with no
    configuration. Whatever manages the schema itself (``alembic``, ``agnt-jobs db
    ...``) asks with ``migrate=False``: it must see, and move, the schema as it is.
    """
    settings = get_settings()
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return _embedded_database_url(settings.data_dir, migrate)


def session_url(*, migrate: bool = True) -> str:
    """The URL of connections that need a session of their own (LISTEN, temporary
    tables and session advisory locks across transactions, migrations):
    ``AGNT_DATABASE_DIRECT_URL`` when the job database is reached through PgBouncer
    in transaction pooling, else the job database's URL."""
    direct = get_settings().database_direct_url
    if direct is not None:
        return direct.get_secret_value()
    return database_url(migrate=migrate)


def _embedded_database_url(data_dir: Path, migrate: bool) -> str:
    global _embedded_url, _embedded_migrated
    with _lock:
        if _embedded_url is None:
            _embedded_url = embedded.start(data_dir)
        if migrate and not _embedded_migrated:
            from agnt_jobs.db.migrate import upgrade

            upgrade(_embedded_url, "head")
            _embedded_migrated = True
        return _embedded_url


@functools.cache
def engine() -> Engine:
    """The process-wide engine for job bodies, sized by the worker's connection
    budget (``agnt_jobs.db.budget``); a stopping worker can cancel the statements
    each run has in flight on it. Bodies keep temporary tables and session locks
    across transactions (``walk.staged_ids``), so they connect to
    ``session_url``: straight to Postgres behind PgBouncer."""
    share = budget(get_settings())
    return inflight.watch(
        create_engine(
            session_url(),
            pool_size=share.body_pool,
            max_overflow=share.body_overflow,
        )
    )


@functools.cache
def admin_engine() -> Engine:
    """The admin view's engine: its reads show any timestamp Postgres can store
    (``db.far``); a small pool of its own beside the job bodies'."""
    return create_engine(database_url(), for_showing=True, pool_size=4, max_overflow=8)
