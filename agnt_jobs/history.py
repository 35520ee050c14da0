"""The run history writer: a Procrastinate worker middleware that records every
attempt of every job in ``job_runs`` (start, end, status, result summary, error).

It runs on the worker's event loop and uses the App's own connection pool, so it
adds two short statements per job and no extra connections.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from typing import Any

from procrastinate import JobContext, exceptions
from procrastinate.middleware import AsyncCallNext
from procrastinate.worker import Worker

logger = logging.getLogger(__name__)

# A run that starts again (a retry, or a job released by a stopping worker) reuses
# its row only if the attempt number is the same; the new attempt gets a new row.
START_RUN = """
INSERT INTO job_runs (job_id, attempt, task_name, queue_name, worker_name, worker_id)
VALUES (%(job_id)s, %(attempt)s, %(task_name)s, %(queue_name)s, %(worker_name)s,
        %(worker_id)s)
ON CONFLICT (job_id, attempt) DO UPDATE
SET started_at = now(), finished_at = NULL, status = 'running', result = NULL,
    error = NULL, worker_name = EXCLUDED.worker_name, worker_id = EXCLUDED.worker_id
"""

FINISH_RUN = """
UPDATE job_runs
SET finished_at = now(), status = %(status)s, result = %(result)s, error = %(error)s
WHERE job_id = %(job_id)s AND attempt = %(attempt)s
"""

ERROR_TEXT_LIMIT = 4000


def _summary(result: Any) -> dict[str, Any] | None:
    """The result as a JSON object, whatever the body returned."""
    if result is None:
        return None
    if not isinstance(result, dict):
        result = {"result": result}
    # Round-trip so a non-JSON value (a datetime, a Decimal) is stored as text
    # instead of failing the job after its work is done.
    return json.loads(json.dumps(result, default=str))


def _error_text(error: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    return text[:ERROR_TEXT_LIMIT]


async def record_run(
    call_next: AsyncCallNext, context: JobContext, worker: Worker
) -> Any:
    job = context.job
    key = {"job_id": job.id, "attempt": job.attempts + 1}
    connector = context.app.connector
    await connector.execute_query_async(
        START_RUN,
        **key,
        task_name=job.task_name,
        queue_name=job.queue,
        worker_name=context.worker_name,
        worker_id=worker.worker_id,
    )
    status, result, error = "failed", None, None
    try:
        value = await call_next()
        status, result = "succeeded", _summary(value)
        return value
    except (exceptions.JobAborted, asyncio.CancelledError) as exc:
        status, error = "aborted", _error_text(exc) or "aborted"
        raise
    except BaseException as exc:
        error = _error_text(exc)
        raise
    finally:
        try:
            await asyncio.shield(
                connector.execute_query_async(
                    FINISH_RUN, **key, status=status, result=result, error=error
                )
            )
        except Exception:  # the job's own outcome must not be masked by history
            logger.exception(
                "could not record the end of a run",
                extra={"action": "run_history_error", **key},
            )
