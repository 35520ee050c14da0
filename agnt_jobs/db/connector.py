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
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any, LiteralString

import psycopg
import psycopg_pool
from procrastinate import PsycopgConnector, SyncPsycopgConnector
from procrastinate import sql as procrastinate_sql
from procrastinate.connector import LISTEN_TIMEOUT, BaseConnector, Notify
from psycopg_pool import PoolTimeout
from psycopg_pool.pool_async import AddConnection

from agnt_jobs import tracing
from agnt_jobs.db import conninfo, database_url, migrate, outage, queries, session_url
from agnt_jobs.db.budget import budget
from agnt_jobs.db.url import connect_kwargs
from agnt_jobs.settings import get_settings

# The listener's session shows as this in pg_stat_activity (and PgBouncer's SHOW
# CLIENTS, where it must never appear).
LISTENER_NAME = "agnt-jobs listener"
_NAME_THE_LISTENER = f"SET application_name = '{LISTENER_NAME}'"

# How often an opening pool looks whether its first connections came.
STARTING_POLL_SECONDS = 0.1
# A connection that answered a query this recently is lent without the pool's
# check (an empty query, a round trip as long as the worker's own query): what the
# check finds, a connection the server closed since, is a restart or a kill within
# that second, an outage the worker's loops retry through anyway.
TRUSTED_SECONDS = 1.0


class OutageAwarePool(psycopg_pool.AsyncConnectionPool):
    """psycopg's pool, fit to outlive an outage and a full server.

    The stock pool retries a lost connection with a delay that doubles without a
    cap and gives up after ``reconnect_timeout``: after a minute down, its next
    attempt could be a minute after the database is back. Here the delay is capped
    (``AGNT_DB_RETRY_MAX_SECONDS``) and it never gives up. Its warning for each
    failed attempt is dropped: the worker's outage lines say it once.

    The stock pool's timeouts say only that no connection came ("pool
    initialization incomplete after 30.0 sec"); here they carry the reason the
    last connection attempt failed, so a full server ("too many clients") is
    reported as what it is. Opening waits while the server is full, as a worker
    waits out an outage, and ``starved`` says why the pool could not open the
    connection it last tried, for the worker's heartbeat to record.
    """

    max_reconnect_delay = 4.0
    #: Why the last connection the pool tried to open failed; None once one opens.
    starved: BaseException | None = None
    start_outage: outage.Outage | None = None
    #: Seconds a connection lent by ``connection()`` may go unanswered (None: no
    #: bound).
    query_deadline: float | None = None
    #: When each connection lent by ``connection()`` last answered a query.
    answered: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] | None = (
        None
    )

    @contextlib.asynccontextmanager
    async def connection(
        self, timeout: float | None = None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection lent for one query, as Procrastinate borrows one for each
        (``PsycopgConnector._get_cursor``, Procrastinate pinned to a minor
        version), under the query deadline: a database gone silent (the
        connection open, nobody answering) would otherwise hang the worker's loop
        that asked for as long as the kernel keeps the connection. Past the
        deadline the query ends with ``NoAnswer`` and the pool discards the
        connection (``outage.answered_within``)."""
        async with super().connection(timeout) as connection:
            with outage.answered_within(connection, self.query_deadline):
                yield connection
            if self.answered is not None:
                self.answered[connection] = time.monotonic()

    async def schedule_task(self, task: Any, delay: float) -> None:
        if isinstance(task, AddConnection):
            delay = min(delay, self.max_reconnect_delay)
        await super().schedule_task(task, delay)

    async def _connect(self, timeout: float | None = None) -> Any:
        try:
            connection = await super()._connect(timeout)
        except Exception as error:
            self.starved = error
            raise
        self.starved = None
        return connection

    async def getconn(self, timeout: float | None = None) -> Any:
        try:
            connection = await super().getconn(timeout)
        except PoolTimeout as error:
            raise self._with_cause(error) from self.starved
        return connection

    async def wait(self, timeout: float = 30.0) -> None:
        """Wait for the pool's first ``min_size`` connections, as the stock pool
        does (closed and ``PoolTimeout`` past ``timeout``), except while the server
        refuses them for want of connection slots: that is waited out, said once
        like an outage, for as long as an outage may last."""
        deadline = time.monotonic() + timeout
        while self.get_stats()["pool_available"] < self.min_size:
            refused, said = self.starved, self.start_outage
            if (
                refused is not None
                and said is not None
                and outage.is_server_full(refused)
            ):
                said.lost("start", refused)
                said.check_limit()
                deadline = time.monotonic() + timeout
            elif time.monotonic() > deadline:
                await self.close()
                raise self._with_cause(
                    PoolTimeout(f"pool initialization incomplete after {timeout} sec")
                ) from self.starved
            await asyncio.sleep(STARTING_POLL_SECONDS)
        if self.start_outage is not None:
            self.start_outage.back()

    def _with_cause(self, error: PoolTimeout) -> PoolTimeout:
        """``error`` saying why the last connection attempt failed, if one did."""
        if self.starved is None:
            return error
        reason = str(self.starved).strip().splitlines()
        said = f"{error}; " if str(error) else ""
        return PoolTimeout(
            f"{said}last connection attempt: {reason[-1] if reason else ''}"
        )


# How long the listener keeps reading once something arrived: the rest of a burst
# of notifications comes in the same read.
NOTIFY_GRACE_SECONDS = 0.05


async def _until_readable(connection: psycopg.AsyncConnection, timeout: float) -> bool:
    """Wait until ``connection``'s socket has something to read (True) or
    ``timeout`` seconds pass (False), with no wake in between."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[bool] = loop.create_future()
    fileno = connection.pgconn.socket  # OperationalError once closed

    def ready() -> None:
        if not readable.done():
            readable.set_result(True)

    loop.add_reader(fileno, ready)
    try:
        return await asyncio.wait_for(readable, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fileno)


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
    unanswered query, and the pool discards it. Each query sent on a connection
    it lends through ``connection()`` has the same deadline, and so has the wait
    for a free connection."""
    configure = kwargs.pop("configure", None)
    settings = get_settings()
    deadline = settings.db_silent_after_seconds / 2

    async def setup(connection: psycopg.AsyncConnection) -> None:
        await connection.set_autocommit(True)
        if configure is not None:
            await configure(connection)

    answered: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
        weakref.WeakKeyDictionary()
    )

    async def check(connection: psycopg.AsyncConnection) -> None:
        last = answered.get(connection)
        if last is not None and time.monotonic() - last < TRUSTED_SECONDS:
            return
        with outage.answered_within(connection, deadline):
            await connection.execute("")

    kwargs["check"] = check
    # Waiting for a free connection has the same bound as a query.
    kwargs.setdefault("timeout", deadline)
    pool = OutageAwarePool(configure=setup, reconnect_timeout=float("inf"), **kwargs)
    pool.max_reconnect_delay = settings.db_retry_max_seconds
    pool.query_deadline = deadline
    pool.answered = answered
    pool.start_outage = outage.Outage(
        report_seconds=settings.db_outage_report_seconds,
        limit_seconds=settings.database_outage_limit_seconds,
    )
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
        #: Where the LISTEN connection goes when it must not share the pool's URL.
        self._listen_conninfo: str | None = None

    @property
    def starved(self) -> BaseException | None:
        """Why the pool could not open a connection lately, while it cannot."""
        pool = self._async_pool
        return pool.starved if isinstance(pool, OutageAwarePool) else None

    @property
    def query_deadline(self) -> float | None:
        """Seconds a worker's query may go unanswered (None before the connector
        read its settings)."""
        return self._query_timeout

    async def execute_query_all_async(
        self, query: LiteralString, **arguments: Any
    ) -> list[dict[str, Any]]:
        with _deferring(query, arguments) as (sent, sent_arguments):
            rows: list[dict[str, Any]] = await super().execute_query_all_async(
                sent, **sent_arguments
            )
            return rows

    async def execute_query_all_async_with_connection(
        self, connection: Any, query: LiteralString, **arguments: Any
    ) -> list[dict[str, Any]]:
        with _deferring(query, arguments) as (sent, sent_arguments):
            rows: list[
                dict[str, Any]
            ] = await super().execute_query_all_async_with_connection(
                connection, sent, **sent_arguments
            )
            return rows

    def _resolve(self) -> str:
        """The database's URL, and the pool's arguments from the settings."""
        # _pool_args is what PsycopgConnector passes to the pool; filling it late is
        # the one internal we lean on (Procrastinate is pinned to a minor version).
        url = database_url()
        if not self._resolved:
            settings = get_settings()
            self._pool_args.setdefault("conninfo", conninfo(url))
            self._pool_args.setdefault("kwargs", connect_kwargs())
            if settings.database_direct_url is not None:
                self._listen_conninfo = conninfo(session_url())
            self._pool_args.setdefault("min_size", settings.pool_min_size)
            self._pool_args.setdefault("max_size", budget(settings).queue_pool)
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
        the pool on a bad database would wait 30 s and name no cause). A server
        with no connection slot left is waited for, said once like an outage, as
        ``agnt-jobs worker`` does: the stock ``procrastinate worker`` of a fleet
        larger than the server starts too. A pool given by the caller is the
        caller's to check."""
        if pool is None:
            url = await asyncio.to_thread(self._resolve)
            settings = get_settings()
            await asyncio.to_thread(
                outage.waiting_while_full,
                lambda: migrate.check_current(url),
                where="start",
                outage=outage.Outage(
                    settings.db_outage_report_seconds,
                    settings.database_outage_limit_seconds,
                ),
                backoff=outage.Backoff(
                    settings.db_retry_initial_seconds, settings.db_retry_max_seconds
                ),
            )
        await super().open_async(pool)

    @contextlib.asynccontextmanager
    async def _get_standalone_connection(
        self,
    ) -> AsyncIterator[psycopg.AsyncConnection]:
        """The LISTEN connection: a session of its own, so straight to Postgres
        when the pool goes through PgBouncer (a LISTEN on a transaction-pooled
        connection would hear nothing)."""
        if self._listen_conninfo is None:
            async with super()._get_standalone_connection() as connection:
                await connection.execute(_NAME_THE_LISTENER)
                yield connection
            return
        async with await psycopg.AsyncConnection.connect(
            self._listen_conninfo, autocommit=True
        ) as connection:
            await connection.execute(_NAME_THE_LISTENER)
            yield connection

    async def _loop_notify(
        self,
        on_notification: Notify,
        connection: psycopg.AsyncConnection,
        timeout: float = LISTEN_TIMEOUT,
    ) -> None:
        """Hand each notification to ``on_notification`` until the connection is
        lost (then return: ``listen_notify`` connects and listens again), asking
        the server ``SELECT 1`` after ``timeout`` seconds in which nothing
        arrived, so that a silent dead connection is found.

        Between bursts the loop waits for the socket alone
        (``_until_readable``): psycopg's ``notifies()`` wakes every 100 ms to
        look for Ctrl-C (an idle worker used 4.4 to 5.3 ms of CPU a second
        waiting in it, 1.2 to 1.4 ms so, docs/performance.md), so it is called
        only to read what has arrived, for ``NOTIFY_GRACE_SECONDS``; it also
        hands on the notifications psycopg kept while ``SELECT 1`` ran.
        Procrastinate's loop wraps every notification in a task and a timer of
        its own (``asyncio.wait_for``): 17 us of CPU a notification against 4 us
        read straight off psycopg's generator, and every job's notification
        reaches every listening worker of a fleet."""
        while True:
            try:
                async for notification in connection.notifies(
                    timeout=NOTIFY_GRACE_SECONDS
                ):
                    await on_notification(
                        channel=notification.channel, payload=notification.payload
                    )
                if not await _until_readable(connection, timeout):
                    await connection.execute("SELECT 1")
            except psycopg.OperationalError:
                return

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
