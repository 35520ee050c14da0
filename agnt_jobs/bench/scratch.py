"""Scratch databases for the benchmarks: created on the Postgres server of
``AGNT_DATABASE_URL`` (or ``--server``), named ``agnt_bench_<run>_<purpose>``, and
dropped when the run ends. The bench never reads or writes an existing database, so
it cannot disturb, or be disturbed by, anybody's data.

One migrated template is built per run; every other database is a copy of it or of
a filled fixture (``CREATE DATABASE ... TEMPLATE``: a file copy, so a job and its
hand-written SQL baseline start from byte-identical data).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from agnt_jobs import logs
from agnt_jobs.db.url import with_dbname
from agnt_jobs.settings import ConfigError

logger = logging.getLogger(__name__)

PREFIX = "agnt_bench_"


class ScratchServer:
    """Creates, copies and drops this run's databases on one server."""

    def __init__(self, url: str, template: str | None = None) -> None:
        """``template``: an existing database at the migration head to copy
        instead of migrating one (the test suite passes its own)."""
        # Any database of the server will do for CREATE/DROP DATABASE; "postgres"
        # exists on every server, the configured one may be what we must not touch.
        self.admin_url = with_dbname(url, "postgres")
        self.run_id = secrets.token_hex(3)
        self.created: list[str] = []
        self._template = template

    def name(self, purpose: str) -> str:
        return f"{PREFIX}{self.run_id}_{purpose}"[:63]

    def url(self, name: str) -> str:
        return with_dbname(self.admin_url, name)

    def _admin(self, statement: sql.Composed) -> None:
        try:
            with psycopg.connect(self.admin_url, autocommit=True) as admin:
                admin.execute(statement)
        except psycopg.errors.InsufficientPrivilege as error:
            raise ConfigError(
                f"the bench creates scratch databases and may not ({error}): give "
                "its user CREATEDB or pass --server with one that has it"
            ) from None

    def create(self, purpose: str, template: str | None = None) -> str:
        """A new empty (or copied) database; returns its name."""
        name = self.name(purpose)
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            # FILE_COPY copies the template's directory: seconds for a large
            # fixture, where the default WAL_LOG strategy writes it all to WAL.
            statement = sql.SQL(
                "CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY"
            ).format(sql.Identifier(name), sql.Identifier(template))
        for attempt in range(20):
            if template is not None:
                self._wait_idle(template)
            try:
                self._admin(statement)
                break
            except psycopg.errors.ObjectInUse:
                # An autovacuum worker (or a child's last backend) connected to the
                # template between the wait and the copy.
                if attempt == 19:
                    raise
                time.sleep(0.25)
        self.created.append(name)
        return name

    def migrated(self, purpose: str) -> str:
        """A fresh database at the code's migration head (copied from the run's
        migrated template, built on first use)."""
        if self._template is None:
            from agnt_jobs.db.migrate import upgrade

            template = self.create("template")
            upgrade(self.url(template), "head")
            self._template = template
        return self.create(purpose, template=self._template)

    def drop(self, name: str) -> None:
        self._admin(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        for name in reversed(list(self.created)):
            try:
                self.drop(name)
            except psycopg.Error:
                logger.warning(
                    f"could not drop scratch database {name}",
                    extra=logs.event("bench_drop_failed", database=name),
                )

    def _wait_idle(self, name: str, timeout: float = 30.0) -> None:
        """Wait until no session uses ``name``: a template must have none, and a
        child process's backends may take a moment to exit after it did."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            while time.monotonic() < deadline:
                busy = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                    [name],
                ).fetchone()
                if not busy or not busy[0]:
                    return
                time.sleep(0.05)

    def wait_idle(self, name: str) -> None:
        self._wait_idle(name)


@contextmanager
def scratch_server(url: str, template: str | None = None) -> Iterator[ScratchServer]:
    server = ScratchServer(url, template)
    try:
        yield server
    finally:
        server.drop_all()
