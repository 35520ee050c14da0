"""A Procrastinate connector whose database is resolved when it opens, not when it
is built.

``agnt_jobs.app`` must be importable with no database around (the stock
``procrastinate`` CLI imports it first, tests swap the connector), yet with no URL
configured the database is an embedded server that has to be started. So the
connector asks ``agnt_jobs.db`` for the URL at the last moment.

Its pooled connections are in autocommit. Every query Procrastinate and our worker
code send through the connector is one statement in its own transaction anyway
(the pool committed after each); autocommit saves the two extra round trips of
that transaction (``BEGIN``, ``COMMIT``) on every fetch, finish, history write and
schedule decision. The queue benchmark (``agnt-jobs bench --only queue``) measured
the difference.

With traces on, a defer through a connector of ours (the App's, its sync form, the
admin's ``TracedSyncConnector``) is a span, and each job it defers carries that
span's traceparent to its run (``job_traces``): the same statement writes both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterator
from typing import Any, LiteralString, TypeVar

import psycopg
import psycopg_pool
from procrastinate import PsycopgConnector, SyncPsycopgConnector
from procrastinate import sql as procrastinate_sql
from procrastinate.connector import BaseConnector
from psycopg_pool.pool_async import AddConnection

from agnt_jobs import tracing
from agnt_jobs.db import conninfo, database_url, migrate, outage, queries
from agnt_jobs.settings import get_settings

T = TypeVar("T")


class OutageAwarePool(psycopg_pool.AsyncConnectionPool):
    """psycopg's pool, fit to outlive an outage.

    The stock pool retries a lost connection with a delay that doubles without a
    cap and gives up after ``reconnect_timeout``: after a minute down, its next
    attempt could be a minute after the database is back. Here the delay is capped
    (``AGNT_DB_RETRY_MAX_SECONDS``) and it never gives up. Its warning for each
    failed attempt is dropped: the worker's outage lines say it once.
    """

    max_reconnect_delay = 4.0

    async def schedule_task(self, task: Any, delay: float) -> None:
        if isinstance(task, AddConnection):
            delay = min(delay, self.max_reconnect_delay)
        await super().schedule_task(task, delay)


def _quiet_reconnects(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(("error connecting in", "reconnection"))


logging.getLogger("psycopg.pool").addFilter(_quiet_reconnects)


def autocommit_pool(**kwargs: Any) -> psycopg_pool.AsyncConnectionPool:
    """Procrastinate's pool, with each new connection switched to autocommit
    before any user ``configure`` hook runs, and a liveness check with a deadline.

    The pool checks a connection before lending it (an empty query). On a silent
    database that check never returns, and whoever asked for a connection (the run
    history retrying its record, say) would wait with it for as long as the
    silence lasts; past the query deadline the connection is given up on like any
    unanswered query, and the pool discards it."""
    configure = kwargs.pop("configure", None)
    settings = get_settings()
    deadline = settings.db_silent_after_seconds / 2

    async def setup(connection: psycopg.AsyncConnection) -> None:
        await connection.set_autocommit(True)
        if configure is not None:
            await configure(connection)

    async def check(connection: psycopg.AsyncConnection) -> None:
        await outage.bounded(connection.execute(""), deadline)

    kwargs["check"] = check
    pool = OutageAwarePool(configure=setup, reconnect_timeout=float("inf"), **kwargs)
    pool.max_reconnect_delay = settings.db_retry_max_seconds
    return pool


_DEFER_JOBS = procrastinate_sql.queries["defer_jobs"]
_TRACED_DEFER_JOBS = queries.load("traces.sql")["defer_jobs"]


@contextlib.contextmanager
def _deferring(
    query: LiteralString, arguments: dict[str, Any]
) -> Iterator[tuple[LiteralString, dict[str, Any]]]:
    """The query to send for ``query``: Procrastinate's defer is, with traces on,
    a span whose traceparent each new job carries (one more argument); any other
    query, and any query with traces off, goes as it is."""
    if query is not _DEFER_JOBS or not tracing.on():
        yield query, arguments
        return
    jobs = arguments["jobs"]
    names = sorted({job.task_name for job in jobs})
    attributes: dict[str, Any] = {
        "agnt.job": names[0] if len(names) == 1 else None,
        "agnt.jobs": len(jobs),
    }
    with tracing.span(f"defer {', '.join(names)}", attributes, kind="PRODUCER"):
        traceparent = tracing.traceparent()
        yield _TRACED_DEFER_JOBS, {**arguments, "traceparent": traceparent}


class TracedSyncConnector(SyncPsycopgConnector):
    """Procrastinate's sync connector whose defers carry their trace context."""

    def execute_query_all(
        self, query: LiteralString, **arguments: Any
    ) -> list[dict[str, Any]]:
        with _deferring(query, arguments) as (sent, sent_arguments):
            return super().execute_query_all(sent, **sent_arguments)

    def execute_query_all_with_connection(
        self, connection: Any, query: LiteralString, **arguments: Any
    ) -> list[dict[str, Any]]:
        with _deferring(query, arguments) as (sent, sent_arguments):
            return super().execute_query_all_with_connection(
                connection, sent, **sent_arguments
            )


class SettingsConnector(PsycopgConnector):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("pool_factory", autocommit_pool)
        super().__init__(**kwargs)
        self._resolved = False
        self._query_timeout: float | None = None

    # Every query of the worker's loops has a deadline: a database gone silent
    # (the TCP connection open, nobody answering) would otherwise hang a loop for
    # as long as the kernel keeps the connection. Past it the loop sees a lost
    # connection at once; the abandoned query's connection is closed and
    # discarded by the pool in the background.
    async def _bounded(self, query: Awaitable[T]) -> T:
        return await outage.bounded(query, self._query_timeout)

    @property
    def query_deadline(self) -> float | None:
        """Seconds a worker's query may go unanswered (None before the connector
        read its settings)."""
        return self._query_timeout

    async def execute_query_async(self, query: LiteralString, **arguments: Any) -> None:
        await self._bounded(super().execute_query_async(query, **arguments))

    async def execute_query_one_async(
        self, query: LiteralString, **arguments: Any
    ) -> dict[str, Any]:
        return await self._bounded(super().execute_query_one_async(query, **arguments))

    async def execute_query_all_async(
        self, query: LiteralString, **arguments: Any
    ) -> list[dict[str, Any]]:
        with _deferring(query, arguments) as (sent, sent_arguments):
            return await self._bounded(
                super().execute_query_all_async(sent, **sent_arguments)
            )

    async def execute_query_all_async_with_connection(
        self, connection: Any, query: LiteralString, **arguments: Any
    ) -> list[dict[str, Any]]:
        with _deferring(query, arguments) as (sent, sent_arguments):
            return await super().execute_query_all_async_with_connection(
                connection, sent, **sent_arguments
            )

    def _resolve(self) -> str:
        """The database's URL, and the pool's arguments from the settings."""
        # _pool_args is what PsycopgConnector passes to the pool; filling it late is
        # the one internal we lean on (Procrastinate is pinned to a minor version).
        url = database_url()
        if not self._resolved:
            settings = get_settings()
            self._pool_args.setdefault("conninfo", conninfo(url))
            self._pool_args.setdefault("min_size", settings.pool_min_size)
            self._pool_args.setdefault("max_size", settings.pool_max_size)
            self._query_timeout = settings.db_silent_after_seconds / 2
            self._resolved = True
            # A process that opens the App only to defer (procrastinate defer)
            # exports its defer's span too, when the OTEL_* variables ask.
            tracing.configure()
        return url

    async def open_async(
        self, pool: psycopg_pool.AsyncConnectionPool | None = None
    ) -> None:
        """Open the pool, once the database is known to be reachable and at the
        code's head: the check ``agnt-jobs`` runs first, with its one line naming
        the cause, before any worker or ``procrastinate`` command uses it (opening
        the pool on a bad database would wait 30 s and name no cause). A pool
        given by the caller is the caller's to check."""
        if pool is None:
            url = await asyncio.to_thread(self._resolve)
            await asyncio.to_thread(migrate.check_current, url)
        await super().open_async(pool)

    def get_sync_connector(self) -> BaseConnector:
        if not self._async_pool:
            self._resolve()
            if self._sync_connector is None:
                self._sync_connector = TracedSyncConnector(
                    json_dumps=self._json_dumps,
                    json_loads=self._json_loads,
                    **self._pool_args,
                )
        return super().get_sync_connector()
