"""Defer a run of a job in the caller's transaction: the run exists if and only if
the caller's transaction commits, so a booking and the run that reminds its user
commit, or roll back, together.

Every path is one call of the SQL function ``agnt_defer`` (docs/schema.sql), on the
caller's own connection: a SQLAlchemy ``Session`` or ``Connection`` or a psycopg
connection (``defer``), or their async forms (``defer_async``). Postgres checks the
job name and the arguments against ``declared_jobs``, which every worker writes at
start from the App's tasks (``job_declarations``), and refuses what is wrong; the
refusal is ``DeferRefused`` here, and the caller's transaction is aborted like that
of any failed statement, so nothing it wrote commits.

With traces on, deferring is a span, a child of the caller's current one, and the
run carries it (``job_traces``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
import sqlalchemy.exc
from procrastinate import App
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from agnt_jobs import tracing
from agnt_jobs.db import queries

CallerConnection = Session | sa.Connection | psycopg.Connection[Any]
if TYPE_CHECKING:
    # For the annotations only: SQLAlchemy's asyncio needs greenlet, which a caller
    # with an async engine has and a worker, which never uses it, need not install.
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    AsyncCallerConnection = (
        AsyncSession | AsyncConnection | psycopg.AsyncConnection[Any]
    )

# SQLSTATEs of agnt_defer's refusals: an unknown or removed job, bad arguments.
_REFUSALS = {"P0002", "22023"}

SQL = queries.load("defer.sql")


class DeferRefused(ValueError):
    """Postgres refused to defer: an unknown job, or arguments it does not take.
    The message is the database's one line, which says what to do."""


def defer(
    connection: CallerConnection,
    job: str,
    args: Mapping[str, Any] | None = None,
    *,
    at: datetime | None = None,
    queueing_lock: str | None = None,
) -> int:
    """Defer a run of ``job`` in ``connection``'s transaction (a SQLAlchemy
    ``Session`` or ``Connection``, or a psycopg connection); the id of the job that
    will run: the new one, or the one already waiting with the same queueing lock.

    ``at``: not before this instant, and the run's tick. ``queueing_lock``: at most
    one job with it waits (default: the job's own for a run now, none for a run at a
    time). Nothing is committed here: the caller's commit does it."""
    try:
        with tracing.span(f"defer {job}", {"agnt.job": job}, kind="PRODUCER"):
            traceparent = tracing.traceparent()
            if isinstance(connection, psycopg.Connection):
                row = connection.execute(
                    SQL["defer"],
                    _psycopg_params(job, args, at, queueing_lock, traceparent),
                ).fetchone()
                assert row is not None
                return int(row[0])
            call = _call(job, args, at, queueing_lock, traceparent)
            return int(connection.execute(call).scalar_one())
    except (psycopg.Error, sqlalchemy.exc.DBAPIError) as error:
        refusal = _refusal(error)
        if refusal is None:
            raise
        raise refusal from None


async def defer_async(
    connection: AsyncCallerConnection,
    job: str,
    args: Mapping[str, Any] | None = None,
    *,
    at: datetime | None = None,
    queueing_lock: str | None = None,
) -> int:
    """``defer`` on an ``AsyncSession``, an ``AsyncConnection`` or a psycopg
    ``AsyncConnection``."""
    try:
        with tracing.span(f"defer {job}", {"agnt.job": job}, kind="PRODUCER"):
            traceparent = tracing.traceparent()
            if isinstance(connection, psycopg.AsyncConnection):
                cursor = await connection.execute(
                    SQL["defer"],
                    _psycopg_params(job, args, at, queueing_lock, traceparent),
                )
                row = await cursor.fetchone()
                assert row is not None
                return int(row[0])
            call = _call(job, args, at, queueing_lock, traceparent)
            return int((await connection.execute(call)).scalar_one())
    except (psycopg.Error, sqlalchemy.exc.DBAPIError) as error:
        refusal = _refusal(error)
        if refusal is None:
            raise
        raise refusal from None


def _call(
    job: str,
    args: Mapping[str, Any] | None,
    at: datetime | None,
    queueing_lock: str | None,
    traceparent: str | None,
) -> sa.Select[Any]:
    # A Core expression rather than SQL text: each driver binds it in its own
    # parameter style (psycopg, asyncpg, psycopg2 alike).
    return sa.select(
        sa.func.agnt_defer(
            sa.bindparam("job", job, type_=sa.Text()),
            sa.bindparam("args", dict(args or {}), type_=JSONB()),
            sa.bindparam("at", at, type_=sa.DateTime(timezone=True)),
            sa.bindparam("queueing_lock", queueing_lock, type_=sa.Text()),
            sa.bindparam("traceparent", traceparent, type_=sa.Text()),
        )
    )


def _psycopg_params(
    job: str,
    args: Mapping[str, Any] | None,
    at: datetime | None,
    queueing_lock: str | None,
    traceparent: str | None,
) -> dict[str, Any]:
    return {
        "job": job,
        "args": json.dumps(dict(args or {})),
        "at": at,
        "queueing_lock": queueing_lock,
        "traceparent": traceparent,
    }


def _refusal(error: Exception) -> DeferRefused | None:
    """The refusal ``error`` is, if it is one of agnt_defer's."""
    orig = getattr(error, "orig", None) or error
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate not in _REFUSALS:
        return None
    diag = getattr(orig, "diag", None)
    text = getattr(diag, "message_primary", None) or str(orig)
    return DeferRefused(text.strip().splitlines()[0])


def job_declarations(app: App) -> list[dict[str, Any]]:
    """What Postgres needs to know of each job the App can run: its queue, lock,
    queueing lock and the arguments its task takes. Procrastinate's own builtin
    tasks are not ours to defer."""
    return [
        {
            "id": name,
            "queue": task.queue,
            "lock": task.lock,
            "queueing_lock": task.queueing_lock,
            "arguments": _arguments(task.func, task.pass_context),
        }
        for name, task in sorted(app.tasks.items())
        if not name.startswith(("builtin:", "procrastinate."))
    ]


def _arguments(func: Any, pass_context: bool) -> list[str]:
    parameters = list(inspect.signature(func).parameters.values())
    if pass_context:
        parameters = parameters[1:]
    return [
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
