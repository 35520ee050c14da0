"""The database connections each run has checked out, so that a stopping worker can
cancel the statement a run is blocked in (a row lock held by another session, a
long query) on that run's own connection.

A run is tracked while its body runs (``tracked(job_id)``, set by the task that
runs the body, in a context variable the run's thread sees); the job engine's pool
(``watch(engine)``) records every connection checked out under it and forgets it
when it is checked in. ``cancel(job_id)`` asks the server to cancel whatever each
of those connections is executing (psycopg's cancel request, the same as
``pg_cancel_backend`` on that backend): the statement fails with ``QueryCanceled``,
the body's transaction is rolled back when its block exits, and nothing else of
the server's sessions is touched.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

# How long one cancel request may take to reach the server.
CANCEL_TIMEOUT_SECONDS = 2.0

_run: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "agnt_inflight_run", default=None
)
_lock = threading.Lock()
_connections: dict[int, set[Any]] = {}
_RUN_KEY = "agnt_inflight_run"


@contextlib.contextmanager
def tracked(job_id: int) -> Iterator[None]:
    """Within the block, connections the watched engine hands out belong to
    ``job_id``'s run."""
    token = _run.set(job_id)
    try:
        yield
    finally:
        _run.reset(token)
        with _lock:
            _connections.pop(job_id, None)


def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    job_id = _run.get()
    if job_id is None:
        return
    record.info[_RUN_KEY] = job_id
    with _lock:
        _connections.setdefault(job_id, set()).add(dbapi_connection)


def _checked_in(dbapi_connection: Any, record: Any) -> None:
    job_id = record.info.pop(_RUN_KEY, None) if record is not None else None
    if job_id is None:
        return
    with _lock:
        connections = _connections.get(job_id)
        if connections is not None:
            connections.discard(dbapi_connection)


def watch(engine: Engine) -> Engine:
    """Record the connections ``engine`` hands out to tracked runs."""
    if not sa.event.contains(engine, "checkout", _checked_out):
        sa.event.listen(engine, "checkout", _checked_out)
        sa.event.listen(engine, "checkin", _checked_in)
    return engine


def connections(job_id: int) -> list[Any]:
    """The connections ``job_id``'s run holds now."""
    with _lock:
        return list(_connections.get(job_id, ()))


def cancel(job_id: int) -> int:
    """Cancel the statement each connection of ``job_id``'s run is executing (a
    connection between statements ignores it). Blocking: call it from a thread.
    Returns how many connections were asked."""
    asked = 0
    for connection in connections(job_id):
        if not isinstance(connection, psycopg.Connection) or connection.closed:
            continue
        try:
            connection.cancel_safe(timeout=CANCEL_TIMEOUT_SECONDS)
            asked += 1
        except (psycopg.Error, OSError) as error:
            # The server unreachable: the statement ends with the connection.
            logger.debug("cancel request failed: %s", error)
    return asked
