"""The job system's own jobs, each a named unit with its own tests (as River keeps
its job rescuer and job cleaner apart):

- ``selfcheck``: proves the whole path works (a worker picked it up, reached the
  database, recorded the result): ``agnt-jobs run selfcheck --wait`` after a deploy.

- ``rescue_stalled_jobs``: a worker killed mid-job leaves the job ``doing`` forever,
  holding its lock, so no later run of that job can start. Procrastinate's worker
  heartbeats tell which workers are dead; their jobs go back to the queue.
- ``clean_finished_jobs``: finished jobs and their events (3-5 rows per job), the
  run history and the tick decisions are deleted past their retention windows.

Scheduled in ``periodic/maintenance.py``; their SQL is ``db/sql/maintenance.sql``.
All work is in chunks of ``AGNT_JOB_CHUNK_SIZE`` rows, each chunk its own
transaction.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from agnt_jobs import logs
from agnt_jobs.checkpoint import checkpoint
from agnt_jobs.db import queries
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job
from agnt_jobs.settings import Settings
from agnt_jobs.walk import walk

logger = logging.getLogger(__name__)

SQL = queries.load("maintenance.sql")


@job("selfcheck")
def selfcheck(ctx: RunContext) -> JobResult:
    """Reach the database and report how long a round trip took."""
    started = time.perf_counter()
    with ctx.engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    return {"database_ms": round((time.perf_counter() - started) * 1000, 3)}


@job("rescue_stalled_jobs")
def rescue_stalled_jobs(ctx: RunContext) -> JobResult:
    """Retry every running job whose worker has sent no heartbeat for
    ``stalled_worker_seconds``; fail it instead after ``stalled_job_max_attempts``
    lost workers, or when a newer run of the same job already waits."""
    return rescue_stalled(ctx.engine, ctx.settings)


def rescue_stalled(engine: Engine, settings: Settings) -> JobResult:
    """The rescue's pass, which every worker also runs between the job's runs
    (``AgntWorker``). A living worker's jobs are never taken: a worker whose
    heartbeat stops reaching the database stops its jobs, or exits, before its
    heartbeat is this old (``agnt_jobs.scheduler.stopping``)."""
    counts = {"retried": 0, "failed": 0}
    while True:
        checkpoint()
        with engine.begin() as connection:
            stalled = (
                connection.exec_driver_sql(
                    SQL["stalled_jobs"],
                    {
                        "stalled_seconds": settings.stalled_worker_seconds,
                        "limit": settings.job_chunk_size,
                    },
                )
                .mappings()
                .all()
            )
            for job in stalled:
                outcome = _rescue(connection, dict(job), settings)
                counts[outcome] += 1
        if len(stalled) < settings.job_chunk_size:
            return counts


def _rescue(connection: Connection, job: dict[str, Any], settings: Settings) -> str:
    attempt = job["attempts"] + 1
    connection.exec_driver_sql(
        SQL["close_lost_run"],
        {
            "job_id": job["id"],
            "attempt": attempt,
            "error": f"WorkerLost: worker {job['worker_id']} sent no heartbeat for "
            f"{settings.stalled_worker_seconds:g}s while running this attempt",
        },
    )
    if attempt >= settings.stalled_job_max_attempts:
        connection.exec_driver_sql(SQL["fail_job"], {"job_id": job["id"]})
        outcome = "failed"
    elif connection.exec_driver_sql(SQL["retry_job"], {"job_id": job["id"]}).scalar():
        outcome = "retried"
    else:
        # A newer run of the job already waits under its queueing lock and will do
        # this run's work: the retry ended this one failed.
        outcome = "failed"
    logger.warning(
        f"Job {job['id']} ({job['task_name']}) lost its worker {job['worker_id']}: "
        f"{outcome}",
        extra=logs.event(
            "stalled_job_rescued",
            job_id=job["id"],
            task_name=job["task_name"],
            worker_id=job["worker_id"],
            attempt=attempt,
            outcome=outcome,
        ),
    )
    return outcome


@job("clean_finished_jobs")
def clean_finished_jobs(ctx: RunContext) -> JobResult:
    """Delete finished jobs and their events, run history and tick decisions past
    their retention windows, oldest first, chunk by chunk."""
    engine, settings, now = ctx.engine, ctx.settings, ctx.now
    job_cutoff = now - timedelta(days=settings.job_retention_days)
    history_cutoff = now - timedelta(days=settings.run_history_retention_days)
    counts = {
        "jobs_deleted": _delete_in_chunks(
            engine, "delete_finished_jobs", job_cutoff, settings
        ),
        "runs_deleted": _delete_in_chunks(
            engine, "delete_old_runs", history_cutoff, settings, by_id=False
        ),
        "ticks_deleted": _delete_in_chunks(
            engine, "delete_old_ticks", history_cutoff, settings, by_id=False
        ),
    }
    with engine.begin() as connection:
        counts["workers_deleted"] = connection.exec_driver_sql(
            SQL["delete_gone_workers"]
        ).rowcount
    logger.info(
        "retention applied",
        extra=logs.event("finished_jobs_cleaned", **counts),
    )
    return counts


def _delete_in_chunks(
    engine: Engine,
    query: str,
    cutoff: datetime,
    settings: Settings,
    *,
    by_id: bool = True,
) -> int:
    """Run ``query`` (returning ``scanned, deleted, last_id``) until a chunk scans
    fewer than a chunk's rows. ``by_id``: the query walks by id from ``last_id``;
    otherwise each chunk deletes what it took, so the next finds the rest (its
    ``last_id`` is NULL, which would end a walk by id after one chunk)."""
    totals, _ = walk(
        engine,
        SQL[query],
        {"cutoff": cutoff},
        settings.job_chunk_size,
        cursor={"after": "last_id"} if by_id else None,
        start={"after": 0},
        action=query,
    )
    return totals["deleted"]
