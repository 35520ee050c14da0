"""Jobs about the job system itself: the self-check, and the maintenance duties."""

from __future__ import annotations

import time

import sqlalchemy as sa

from agnt_jobs import maintenance
from agnt_jobs.jobs.registry import JobResult, RunContext, job


@job("selfcheck")
def selfcheck(ctx: RunContext) -> JobResult:
    """Prove the whole path works: a worker picked this up, reached the database and
    recorded the result. ``agnt-jobs run selfcheck --wait`` after a deploy."""
    started = time.perf_counter()
    with ctx.engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    return {"database_ms": round((time.perf_counter() - started) * 1000, 3)}


@job("rescue_stalled_jobs")
def rescue_stalled_jobs(ctx: RunContext) -> JobResult:
    """Retry the running jobs of workers that stopped heartbeating (see
    ``agnt_jobs.maintenance``)."""
    return maintenance.rescue_stalled_jobs(ctx.engine, ctx.settings)


@job("clean_finished_jobs")
def clean_finished_jobs(ctx: RunContext) -> JobResult:
    """Delete finished jobs, their events, and history past retention (see
    ``agnt_jobs.maintenance``)."""
    return maintenance.clean_finished_jobs(ctx.engine, ctx.settings, ctx.now)
