"""The run history writer: a Procrastinate worker middleware that records every
attempt of every job in ``job_runs`` (start, end, status, result summary, error).

It runs on the worker's event loop and adds two short statements per job. The
first also reads how long the run may take (``run_timeout``), which it hands to the
task in the job's context, so that the body's thread does not ask for it on a
connection of its own (a pool checkout, a liveness ping, the query and a rollback:
the queue benchmark measured that at a third of the worker's CPU per no-op job). An
``AgntWorker`` sends them through a ``HistoryWriter``: one connection of the App's
pool that the worker keeps while it runs, in autocommit. Taking a pool connection
per statement instead costs a liveness check (a round trip) each time, which the
queue benchmark measured at a quarter of the worker's CPU per no-op job; kept
connection, the history's cost stayed within a tenth of a stock worker's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import traceback
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import psycopg
from procrastinate import JobContext, exceptions
from procrastinate.job_context import AbortReason
from procrastinate.middleware import AsyncCallNext
from procrastinate.worker import Worker
from psycopg.types.json import Jsonb

from agnt_jobs import logs, tracing
from agnt_jobs.checkpoint import CANCELLED, SHUTDOWN, RunStopped, RunTimedOut
from agnt_jobs.db import outage, queries
from agnt_jobs.scheduler.deploy import SQL

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRACES = queries.load("traces.sql")

# A run that starts again (a retry, or a job released by a stopping worker) reuses
# its row only if the attempt number is the same; the new attempt gets a new row.
# ``{runs}`` is a relation of (job_id, attempt, task_name, queue_name): one run
# here, a claimed batch in the worker's claim (``claim_statement``).
START_RUNS = """
INSERT INTO job_runs
    (job_id, attempt, task_name, queue_name, worker_name, worker_id)
SELECT job_id, attempt, task_name, queue_name, %(worker_name)s, %(worker_id)s
FROM {runs}
ON CONFLICT (job_id, attempt) DO UPDATE
SET started_at = now(), finished_at = NULL, status = 'running', result = NULL,
    error = NULL, worker_name = EXCLUDED.worker_name,
    worker_id = EXCLUDED.worker_id
"""

# One run; the statement's one value is the run's timeout (``run_timeout``, with
# ``job`` the task's name).
_ONE_RUN = (
    "(VALUES (%(job_id)s::bigint, %(attempt)s::integer, %(job)s::text, "
    "%(queue_name)s::text)) AS run (job_id, attempt, task_name, queue_name)"
)
START_RUN = f"""
WITH started AS ({START_RUNS.format(runs=_ONE_RUN)})
SELECT (
{SQL["run_timeout"]}
) AS timeout
"""

#: Where ``record_run`` puts the run's timeout in the job's ``additional_context``.
#: A worker that claims in batches puts it there itself, having recorded the run's
#: start in the claim: ``record_run`` then records only its end.
RUN_TIMEOUT = "agnt_run_timeout"

# Only a run still running: one the rescue closed (its worker judged lost) keeps
# the rescue's record if its worker ends it late.
FINISH_RUN = """
UPDATE job_runs
SET finished_at = now(), status = %(status)s, result = %(result)s, error = %(error)s
WHERE job_id = %(job_id)s AND attempt = %(attempt)s AND status = 'running'
RETURNING job_id
"""

ERROR_TEXT_LIMIT = 4000

#: Where ``record_run`` leaves the run's end in the job's ``additional_context``
#: for a worker that ``records_run_ends`` itself (``StoppingWorker``).
RUN_END = "agnt_run_end"


@dataclasses.dataclass(frozen=True)
class RunEnd:
    """How a run ended, as ``job_runs`` keeps it (``result`` a JSON object)."""

    status: str
    result: dict[str, Any] | None
    error: str | None


class HistoryWriter:
    """One connection borrowed from the App's pool for a worker's lifetime, in
    autocommit, for the history statements (psycopg serialises the jobs' writes
    on it). A broken connection goes back to the pool, which discards it, and the
    statement is tried once more on a fresh one, as the pool's check would have.
    """

    def __init__(self, pool: Any, deadline: float | None = None) -> None:
        self._pool = pool
        self._deadline = deadline
        self._connection: psycopg.AsyncConnection | None = None
        self._autocommit_before = False
        self._lock = asyncio.Lock()

    async def _borrow(self) -> psycopg.AsyncConnection:
        async with self._lock:
            if self._connection is None:
                connection = await self._pool.getconn()
                self._autocommit_before = connection.autocommit
                if not connection.autocommit:
                    await connection.set_autocommit(True)
                self._connection = connection
            return self._connection

    async def _give_back(
        self, connection: psycopg.AsyncConnection | None = None
    ) -> None:
        """Return the kept connection to the pool; given ``connection``, only if
        it is still the kept one (a statement sent beside it may have given it
        back already)."""
        async with self._lock:
            if connection is not None and connection is not self._connection:
                return
            connection, self._connection = self._connection, None
            if connection is None:
                return
            if not connection.closed and not connection.broken:
                await connection.set_autocommit(self._autocommit_before)
            await self._pool.putconn(connection)

    async def _run(
        self,
        query: str,
        params: Any,
        read: Callable[[psycopg.AsyncCursor[Any]], Awaitable[T]],
    ) -> T:
        for attempt in (1, 2):
            connection = await self._borrow()
            try:
                # Past the deadline the connection's socket is shut down, so the
                # wait ends at once with ``NoAnswer`` and the connection is broken.
                with outage.answered_within(connection, self._deadline):
                    return await read(await connection.execute(query, params))
            except outage.NoAnswer:
                await self._give_back(connection)  # broken: the pool discards it
                raise
            except psycopg.OperationalError:
                await self._give_back(connection)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def execute(self, query: str, **params: Any) -> Any:
        """Run ``query``; its first row's first value, or None."""
        return await self._run(query, params, _first_value)

    async def rows(self, query: str, **params: Any) -> list[dict[str, Any]]:
        """Run ``query``; its rows, by column name."""
        return await self._run(query, params, _all_rows)

    async def __aenter__(self) -> HistoryWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._give_back()


async def _first_value(cursor: psycopg.AsyncCursor[Any]) -> Any:
    row = await cursor.fetchone() if cursor.description else None
    return None if row is None else row[0]


async def _all_rows(cursor: psycopg.AsyncCursor[Any]) -> list[dict[str, Any]]:
    if not cursor.description:
        return []
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]


def writer_for(connector: Any) -> HistoryWriter | None:
    """A writer on the connector's pool, or None for a connector without one
    (the history then goes through the connector's own queries)."""
    try:
        pool = connector.pool
    except (AttributeError, exceptions.AppNotOpen):
        return None
    if not hasattr(pool, "getconn"):
        return None
    return HistoryWriter(pool, getattr(connector, "query_deadline", None))


def _summary(result: Any) -> dict[str, Any] | None:
    """The result as a JSON object, whatever the body returned."""
    if result is None:
        return None
    if not isinstance(result, dict):
        result = {"result": result}
    # Round-trip so a non-JSON value (a datetime, a Decimal) is stored as text
    # instead of failing the job after its work is done.
    summary: dict[str, Any] = json.loads(json.dumps(result, default=str))
    return summary


def _error_text(error: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    return text[:ERROR_TEXT_LIMIT]


async def _deferrer_traceparent(context: JobContext) -> str | None:
    """The traceparent the job carries from its deferrer (traces on only); None for
    none, or when it cannot be read: a lost trace never fails a run."""
    try:
        rows = await context.app.connector.execute_query_all_async(
            TRACES["run_traceparent"], job_id=context.job.id
        )
    except Exception:
        logger.debug("could not read the run's trace context", exc_info=True)
        return None
    return rows[0]["traceparent"] if rows else None


async def _first_value_of(connector: Any, query: str, **params: Any) -> Any:
    rows = await connector.execute_query_all_async(query, **params)
    return next(iter(rows[0].values()), None) if rows else None


async def record_run(
    call_next: AsyncCallNext, context: JobContext, worker: Worker
) -> Any:
    job = context.job
    key = {"job_id": job.id, "attempt": job.attempts + 1}
    writer: HistoryWriter | None = getattr(worker, "history", None)
    if writer is not None:
        send = writer.execute
    else:
        send = functools.partial(_first_value_of, context.app.connector)
    # An AgntWorker waits out a lost database before giving up on a record.
    reached = getattr(worker, "reached", None)

    async def execute(query: str, **params: Any) -> Any:
        if reached is None:
            return await send(query, **params)
        return await reached("run_history", lambda: send(query, **params))

    if RUN_TIMEOUT not in context.additional_context:
        context.additional_context[RUN_TIMEOUT] = await execute(
            START_RUN,
            **key,
            job=job.task_name,
            queue_name=job.queue,
            worker_name=context.worker_name,
            worker_id=worker.worker_id,
        )
    status, result, error = "failed", None, None
    timestamp = (job.task_kwargs or {}).get("timestamp")
    with tracing.span(
        f"run {job.task_name}",
        {
            "agnt.job": job.task_name,
            "agnt.job_id": job.id,
            "agnt.attempt": key["attempt"],
            "agnt.queue": job.queue,
            "agnt.worker": context.worker_name,
            "agnt.worker_id": worker.worker_id,
            "agnt.tick": timestamp if isinstance(timestamp, int) else None,
        },
        parent=await _deferrer_traceparent(context) if tracing.on() else None,
        kind="CONSUMER",
    ) as traced:
        try:
            value = await call_next()
            status, result = "succeeded", _summary(value)
            return value
        except RunStopped as exc:
            status = "cancelled" if exc.reason == CANCELLED else "stopped"
            error = _error_text(exc)
            raise
        except RunTimedOut as exc:
            status, error = "timed_out", _error_text(exc)
            raise
        except (exceptions.JobAborted, asyncio.CancelledError) as exc:
            # An async body cancelled by its stopping worker was stopped, not aborted.
            shutdown = context.abort_reason() == AbortReason.SHUTDOWN
            status = "stopped" if shutdown else "aborted"
            if shutdown:
                error = f"{type(exc).__name__}: {SHUTDOWN}"
            else:
                error = _error_text(exc) or "aborted"
            raise
        except BaseException as exc:
            error = _error_text(exc)
            raise
        finally:
            traced.set_attribute("agnt.outcome", status)
            if status != "succeeded":
                traced.set_status_error(error or status)
            if getattr(worker, "records_run_ends", False):
                # Its worker records the run's end with the job's, in one statement.
                context.additional_context[RUN_END] = RunEnd(status, result, error)
            else:
                await record_end(execute, key, RunEnd(status, result, error))


async def record_end(
    execute: Callable[..., Awaitable[Any]], key: dict[str, Any], end: RunEnd
) -> None:
    try:
        await asyncio.shield(
            execute(
                FINISH_RUN,
                **key,
                status=end.status,
                result=None if end.result is None else Jsonb(end.result),
                error=end.error,
            )
        )
    except Exception:  # the job's own outcome must not be masked by history
        logger.exception(
            "could not record the end of a run",
            extra=logs.event("run_history_error", **key),
        )
