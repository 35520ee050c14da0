"""Where the database is, and how to talk to it: the URL, the SQLAlchemy engine, and
the embedded Postgres that stands in when no URL is configured."""

from __future__ import annotations

import fcntl
import functools
import logging
import threading
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs import logs
from agnt_jobs.settings import ConfigError, get_settings

logger = logging.getLogger(__name__)

EMBEDDED_DATABASE = "agnt"
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


def _embedded_database_url(data_dir: Path, migrate: bool) -> str:
    global _embedded_url, _embedded_migrated
    with _lock:
        if _embedded_url is None:
            _embedded_url = _start_embedded(data_dir)
        if migrate and not _embedded_migrated:
            from agnt_jobs.migrate import upgrade

            upgrade(_embedded_url, "head")
            _embedded_migrated = True
        return _embedded_url


def _start_embedded(data_dir: Path) -> str:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its
            # fallback under /tmp is fine for pgserver's lock file.
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:  # pragma: no cover - pgserver is a hard dependency
        raise ConfigError(
            "AGNT_DATABASE_URL is unset and the embedded server (pgserver) is not "
            "installed: set AGNT_DATABASE_URL or pip install pgserver"
        ) from None

    pgdata = (data_dir / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    logger.info(
        "starting embedded Postgres",
        extra=logs.event("embedded_postgres_start", pgdata=str(pgdata)),
    )
    # Two of our processes may start on a fresh data directory at once: one creates
    # the database while the other waits on this file lock instead of racing it.
    with open(pgdata.parent / ".agnt.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        # cleanup_mode="stop": the last of our processes to exit stops the server;
        # pgserver counts the processes sharing it in the data directory.
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        exists = server.psql(
            f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}';"
        )
        if "(1 row)" not in exists:
            server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE};")
    return server.get_uri(EMBEDDED_DATABASE)


def sqlalchemy_url(url: str) -> str:
    """The same database as a SQLAlchemy URL, always on the psycopg 3 driver."""
    scheme = urlsplit(url).scheme
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return "postgresql+psycopg" + url[len(scheme) :]
    raise ConfigError(
        f"AGNT_DATABASE_URL must start with postgresql:// (got {scheme}://)"
    )


def redact(url: str) -> str:
    """The URL with its password replaced, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def create_engine(url: str, **kwargs: object) -> Engine:
    return sa.create_engine(sqlalchemy_url(url), pool_pre_ping=True, **kwargs)


@functools.cache
def engine() -> Engine:
    """The process-wide engine for job bodies, sized for one worker's concurrency."""
    settings = get_settings()
    return create_engine(
        database_url(),
        pool_size=settings.worker_concurrency,
        max_overflow=settings.worker_concurrency,
    )
