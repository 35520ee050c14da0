"""Every job body becomes a Procrastinate task named after its job id.

Each task takes the lock and the queueing lock of its id (never two running, at most
one waiting) and accepts an optional ``timestamp``: the periodic deferrer passes the
tick, a manual ``procrastinate defer <id>`` passes nothing and the tick is now.

A run cut off by the database (``DatabaseConnectionLost``) or stopped by a shutdown
is retried (a stopped one at once: ``AgntWorker`` requeues it); any other failure is
final, as the run history shows it, and so is a run stopped past its schedule's
timeout (``checkpoint.RunTimedOut``) or cancelled by an operator. A run asked to
stop that fails on its way out (its statement cancelled by the stopping worker,
``agnt_jobs.db.inflight``) is a stopped run, whatever the error says.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from procrastinate import App, JobContext, RetryStrategy
from procrastinate.exceptions import JobAborted
from procrastinate.job_context import AbortReason
from procrastinate.tasks import Task
from sqlalchemy.engine import Engine

from agnt_jobs import checkpoint, db, logs
from agnt_jobs.db import inflight
from agnt_jobs.db.outage import as_database_error, is_connection_lost
from agnt_jobs.scheduler.bodies import (
    BODIES,
    JobBody,
    JobResult,
    RunContext,
    require_configured,
)
from agnt_jobs.scheduler.deploy import SQL
from agnt_jobs.scheduler.history import RUN_TIMEOUT
from agnt_jobs.settings import get_settings

DEFAULT_QUEUE = "default"


class DatabaseConnectionLost(Exception):
    """A run cut off by the database: retried once the database is back."""


# A run cut off by the database, or stopped by a shutdown, is tried again: soon,
# then less often. Each attempt is a row of job_runs. A run an operator cancelled
# (also a JobAborted) is not: Procrastinate retries an abort only on shutdown.
RETRY = RetryStrategy(
    max_attempts=8,
    exponential_wait=2,
    retry_exceptions={DatabaseConnectionLost, JobAborted},
)


def _stop_reason(context: JobContext) -> Callable[[], str | None]:
    def reason() -> str | None:
        why = context.abort_reason()
        if why is None:
            return None
        if why == AbortReason.SHUTDOWN:
            return checkpoint.SHUTDOWN
        return checkpoint.CANCELLED

    return reason


def run_timeout(engine: Engine, job_id: int | None, job_name: str) -> timedelta | None:
    """How long this run may take: the timeout of the schedule whose tick deferred
    it, else of the job's own schedule (a run by hand); None for neither."""
    with engine.connect() as connection:
        return connection.exec_driver_sql(
            SQL["run_timeout"], {"job_id": job_id, "job": job_name}
        ).scalar()


def _as_run_error(error: Exception, stop_reason: str | None) -> Exception:
    """What a run that raised ``error`` ended as: stopped if it was asked to stop
    (the worker cancelled its statement), cut off if the database went away."""
    if isinstance(error, JobAborted):
        return error
    if stop_reason is not None:
        return checkpoint.RunStopped(stop_reason)
    if is_connection_lost(error):
        return DatabaseConnectionLost(
            f"database connection lost: {as_database_error(error)}"
        )
    return error


def make_task(
    app: App, job_name: str, body: JobBody, queue: str = DEFAULT_QUEUE
) -> Task[..., JobResult, ...]:
    def run(context: JobContext, timestamp: int | None = None) -> JobResult:
        now = datetime.now(UTC)
        tick = datetime.fromtimestamp(timestamp, UTC) if timestamp else now
        settings = get_settings()
        engine = db.engine()
        with logs.job_context(context.job.id, job_name):
            # A run by hand (a scheduled tick of it is skipped, not deferred):
            # it fails at once, having done nothing, naming what to set.
            require_configured(job_name, settings)
            stop_reason = _stop_reason(context)
            try:
                with inflight.tracked(context.job.id or 0):
                    if RUN_TIMEOUT in context.additional_context:
                        timeout = context.additional_context[RUN_TIMEOUT]
                    else:  # run without the run history (a test's worker)
                        timeout = run_timeout(engine, context.job.id, job_name)
                    with checkpoint.stoppable(stop_reason, timeout):
                        return body(
                            RunContext(
                                engine=engine,
                                settings=settings,
                                tick=tick,
                                now=now,
                                job_id=context.job.id,
                            )
                        )
            except Exception as error:
                ended = _as_run_error(error, stop_reason())
                if ended is error:
                    raise
                raise ended from error

    run.__name__ = run.__qualname__ = job_name
    run.__doc__ = body.__doc__
    run.__module__ = body.__module__
    return app.task(
        name=job_name,
        queue=queue,
        lock=job_name,
        queueing_lock=job_name,
        pass_context=True,
        retry=RETRY,
    )(run)


def register_all(app: App) -> None:
    for job_name, body in sorted(BODIES.items()):
        if job_name not in app.tasks:
            make_task(app, job_name, body)
