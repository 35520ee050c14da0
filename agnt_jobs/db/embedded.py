"""The embedded Postgres (the ``pgserver`` wheel) that stands in when no
``AGNT_DATABASE_URL`` is configured: one server per data directory, shared by every
process of ours that uses it, stopped when the last of them exits."""

from __future__ import annotations

import fcntl
import logging
import warnings
from pathlib import Path

from agnt_jobs import logs
from agnt_jobs.settings import ConfigError

logger = logging.getLogger(__name__)

EMBEDDED_DATABASE = "agnt"

NOT_INSTALLED = (
    "AGNT_DATABASE_URL is not set and the embedded server is not installed: set "
    "AGNT_DATABASE_URL to your Postgres, or pip install 'agnt-jobs[embedded]' "
    "for a local one"
)


def start(data_dir: Path) -> str:
    installed = True
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its
            # fallback under /tmp is fine for pgserver's lock file.
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        installed = False
    if not installed:
        # Raised outside the handler so the error carries no context: the stock
        # procrastinate CLI prints every exception in a chain.
        raise ConfigError(NOT_INSTALLED)

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
        # From the module that defines it: the package does not re-export it.
        server = pgserver.postgres_server.get_server(pgdata, cleanup_mode="stop")
        exists = server.psql(
            f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}';"
        )
        if "(1 row)" not in exists:
            server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE};")
    return server.get_uri(EMBEDDED_DATABASE)
