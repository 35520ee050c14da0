"""Living through a lost database: telling a lost connection from a bug, waiting with
capped exponential backoff and jitter, and saying so in a few lines, not a flood.

Every loop of a worker that talks to Postgres (fetching jobs, LISTEN, heartbeats, the
deferrer, the run history, finishing jobs) reports to the worker's one ``Outage``:
the first failure logs "database lost", a still-failing database logs once per
``report_seconds``, and the first success after that logs "database back" with the
outage's length. Each loop retries on its own ``Backoff``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
import psycopg_pool
import sqlalchemy.exc
from procrastinate import exceptions as procrastinate_exceptions

from agnt_jobs import logs

logger = logging.getLogger(__name__)

T = TypeVar("T")

# SQLSTATE classes of a server going away or not yet there: connection exception,
# operator intervention (shutdown, crash recovery), insufficient resources.
_TRANSIENT_CLASSES = ("08", "57", "53")
# A server with no connection slot left for us: too_many_connections (53300, past
# max_connections or a role's or database's connection limit) and
# configuration_limit_exceeded (53400). The settings are right and the server is
# there; it is full. Waited out like an outage, at start too, never reported as a
# bad URL.
_SERVER_FULL = ("53300", "53400")
# libpq reports a refused connection without a SQLSTATE in some versions; the
# server's message is then all there is. A role without superuser is refused
# with the "reserved" message once only the superusers' slots are left (the
# usual way a fleet, which should not connect as a superuser, finds it full).
_SERVER_FULL_MESSAGES = (
    "too many clients already",
    "too many connections for",
    "remaining connection slots are reserved",
)
# A read-only server: after a failover the old primary, or a standby, answers
# writes with this; our connection must go to the new primary instead.
_READ_ONLY = "25006"


class DatabaseGone(Exception):
    """The database stayed unreachable past ``AGNT_DATABASE_OUTAGE_LIMIT_SECONDS``."""


class _AbandonedQueryNotes(logging.Filter):
    """psycopg warns twice about each query ``bounded`` gave up on (its cancel
    request unanswered, its connection closed); the worker's outage line has
    already said the database is lost, so these add nothing but noise."""

    NOTES = ("query cancellation failed", "query not terminated after cancellation")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOTES)


logging.getLogger("psycopg").addFilter(_AbandonedQueryNotes())


class NoAnswer(TimeoutError):
    """A query the database did not answer within its deadline: a silent database
    (the connection open, nobody answering) is treated as a lost one."""


async def bounded(
    query: Awaitable[T],
    timeout: float | None,
    on_abandoned: Callable[[], None] | None = None,
) -> T:
    """Await ``query`` for at most ``timeout`` seconds, else raise ``NoAnswer`` at
    once. The abandoned query is cancelled in the background: psycopg then asks the
    server to cancel it and closes its connection when that goes unanswered, which
    may take it 10 s more (its own bounds), and the caller need not wait for that.
    ``on_abandoned`` runs once the abandoned query has ended."""
    task = asyncio.ensure_future(query)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if done:
        return task.result()
    task.cancel()

    def ended(finished: asyncio.Future[T]) -> None:
        if not finished.cancelled():
            finished.exception()  # retrieved: the query was given up on already
        if on_abandoned is not None:
            on_abandoned()

    task.add_done_callback(ended)
    raise NoAnswer(f"the database did not answer in {timeout:g} s")


@contextlib.contextmanager
def answered_within(
    connection: psycopg.AsyncConnection[Any], timeout: float | None
) -> Iterator[None]:
    """Bound what is sent on ``connection`` inside the block to ``timeout`` seconds
    (None: no bound): past it, ``NoAnswer`` is raised at once.

    No task per query: one timer, which on expiry asks the server to cancel the
    statement (on a connection of its own, in the background: a live but slow
    server stops it) and then shuts ``connection``'s socket down. The query's wait
    then ends at once with the socket's end, which is reported as ``NoAnswer``;
    the connection is broken, so a pool discards it when it comes back. Cancelling
    the waiting task instead would have psycopg wait for its cancel request and
    then for the query's end, 10 s more on a silent database."""
    if timeout is None:
        yield
        return
    expired: list[bool] = []
    handle = asyncio.get_running_loop().call_later(timeout, _cut, connection, expired)
    try:
        yield
    except Exception as error:
        if expired:
            raise NoAnswer(f"the database did not answer in {timeout:g} s") from error
        raise
    finally:
        handle.cancel()


def _cut(connection: psycopg.AsyncConnection[Any], expired: list[bool]) -> None:
    expired.append(True)
    try:
        fileno = connection.pgconn.socket
    except psycopg.Error:
        return  # closed meanwhile: the query has ended already
    loop = asyncio.get_running_loop()
    canceller = loop.create_task(_cancel(connection))
    _cancelling.add(canceller)
    canceller.add_done_callback(_cancelling.discard)
    # After the cancel request's first step (call_soon keeps order): that step
    # takes what it needs from the connection while it is still whole.
    loop.call_soon(_shut_down, fileno)


_cancelling: set[asyncio.Task[None]] = set()
# A cancel request to a silent server goes unanswered; give up on it after this.
CANCEL_SECONDS = 5.0


async def _cancel(connection: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(Exception):
        await connection.cancel_safe(timeout=CANCEL_SECONDS)


def _shut_down(fileno: int) -> None:
    """Shut down the socket behind ``fileno`` without closing the descriptor,
    which stays libpq's (a duplicate is closed instead)."""
    with (
        contextlib.suppress(OSError),
        socket.socket(fileno=os.dup(fileno)) as duplicate,
    ):
        duplicate.shutdown(socket.SHUT_RDWR)


def is_connection_lost(error: BaseException) -> bool:
    """True when ``error`` means the database is (for now) out of reach, false for
    anything a retry would not cure: a bug, a constraint, a wrong password, a
    database that does not exist."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, psycopg.Error):
            state = current.sqlstate or ""
            if state == _READ_ONLY or state.startswith(_TRANSIENT_CLASSES):
                return True
            if isinstance(current, psycopg.OperationalError | psycopg.InterfaceError):
                # No SQLSTATE: the socket broke, or the server refused or never
                # answered the connection. A server that answered with a reason
                # (bad password: class 28, no such database: 3D) has a SQLSTATE.
                return not state
        if isinstance(current, psycopg_pool.PoolTimeout | ConnectionError):
            return True
        if isinstance(current, TimeoutError):
            return True
        if isinstance(current, sqlalchemy.exc.DBAPIError):
            if current.connection_invalidated:
                return True
            current = current.orig
            continue
        current = current.__cause__ or current.__context__
    return False


def is_server_full(error: BaseException | None) -> bool:
    """True when ``error`` (or what caused it) is the server refusing a connection
    for want of connection slots: a fleet larger than the server's
    ``max_connections``, not a wrong setting."""
    seen: set[int] = set()
    current = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, psycopg.Error):
            if (current.sqlstate or "") in _SERVER_FULL:
                return True
            if any(text in str(current) for text in _SERVER_FULL_MESSAGES):
                return True
        if isinstance(current, sqlalchemy.exc.DBAPIError):
            current = current.orig
            continue
        current = current.__cause__ or current.__context__
    return False


SERVER_FULL_ADVICE = (
    "the server has no connection slot left: raise its max_connections, lower "
    "AGNT_DB_MAX_CONNECTIONS_PER_WORKER, or put PgBouncer in front "
    "(docs/operations.md, Connections)"
)


def as_database_error(error: BaseException) -> BaseException:
    """What to report for ``error``: Procrastinate wraps driver errors in a
    ``ConnectorException`` whose own text says nothing."""
    if isinstance(error, procrastinate_exceptions.ConnectorException):
        return error.__cause__ or error
    return error


def _reason(error: BaseException) -> str:
    error = as_database_error(error)
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".strip().rstrip(":")


@dataclass
class Backoff:
    """Capped exponential backoff with jitter: ``initial``, doubling to ``maximum``;
    each delay is drawn from its upper half, so workers that lost the database at
    the same moment do not all come back at the same moment."""

    initial: float
    maximum: float
    _next: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._next = self.initial

    def delay(self) -> float:
        current = min(self._next, self.maximum)
        self._next = min(current * 2, self.maximum)
        return current / 2 + random.uniform(0, current / 2)


class Outage:
    """The database's state as one process saw it last, and the lines it logs.

    Thread-safe: job threads and the event loop may report to the same outage.
    ``limit`` (seconds, 0 for none) bounds how long an outage may last before
    ``check_limit`` raises ``DatabaseGone``.
    """

    def __init__(
        self,
        report_seconds: float,
        limit_seconds: float = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.report_seconds = report_seconds
        self.limit_seconds = limit_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._last_report = 0.0

    @property
    def down(self) -> bool:
        return self._since is not None

    def down_for(self) -> float:
        since = self._since
        return 0.0 if since is None else self._clock() - since

    def lost(self, where: str, error: BaseException) -> None:
        """``where`` failed because the database is out of reach."""
        now = self._clock()
        with self._lock:
            if self._since is None:
                self._since = self._last_report = now
                first = True
            elif now - self._last_report >= self.report_seconds:
                self._last_report = now
                first = False
            else:
                return
        if first and is_server_full(error):
            logger.warning(
                f"database refuses more connections ({_reason(error)}); waiting: "
                f"{SERVER_FULL_ADVICE}",
                extra=logs.event(
                    "database_full", where=where, error=_reason(error), full=True
                ),
            )
        elif first:
            logger.warning(
                f"database connection lost ({_reason(error)}); retrying",
                extra=logs.event("database_lost", where=where, error=_reason(error)),
            )
        else:
            down = now - (self._since or now)
            logger.warning(
                f"database still unreachable after {down:.0f} s ({_reason(error)})",
                extra=logs.event(
                    "database_still_down", seconds=round(down, 1), error=_reason(error)
                ),
            )

    def back(self) -> None:
        """Something just reached the database."""
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            down, self._since = self._clock() - self._since, None
        logger.warning(
            f"database connection back after {down:.1f} s",
            extra=logs.event("database_back", seconds=round(down, 3)),
        )

    def check_limit(self) -> None:
        if self.limit_seconds and self.down_for() > self.limit_seconds:
            raise DatabaseGone(
                f"the database has been unreachable for more than "
                f"{self.limit_seconds:.0f} s (AGNT_DATABASE_OUTAGE_LIMIT_SECONDS): "
                "giving up; check the database and restart the worker"
            )


async def until_reached(
    operation: Callable[[], Awaitable[T]],
    *,
    where: str,
    outage: Outage,
    backoff: Backoff,
    stopping: Callable[[], bool] = lambda: False,
) -> T:
    """Run ``operation`` until it gets through, waiting out a lost database.
    Errors that are not a lost connection are raised at once; so is the last one
    if ``stopping`` turns true while the database is away."""
    while True:
        try:
            result = await operation()
        except Exception as error:
            if not is_connection_lost(error) or stopping():
                raise
            outage.lost(where, error)
            outage.check_limit()
            await asyncio.sleep(backoff.delay())
            continue
        backoff.reset()
        outage.back()
        return result


def waiting_while_full(
    operation: Callable[[], T], *, where: str, outage: Outage, backoff: Backoff
) -> T:
    """Run ``operation`` (blocking) until the server has a connection for it: a
    full server is waited out, saying so like an outage; every other error,
    unreachable database included, is raised at once for the caller to report."""
    while True:
        try:
            result = operation()
        except Exception as error:
            if not is_server_full(error):
                raise
            outage.lost(where, error)
            outage.check_limit()
            time.sleep(backoff.delay())
            continue
        outage.back()
        return result
