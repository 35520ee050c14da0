"""Jobs about the job system itself."""

from __future__ import annotations

import time

import sqlalchemy as sa

from agnt_jobs.jobs.registry import JobResult, RunContext, job


@job("selfcheck")
def selfcheck(ctx: RunContext) -> JobResult:
    """Prove the whole path works: a worker picked this up, reached the database and
    recorded the result. ``agnt-jobs run selfcheck --wait`` after a deploy."""
    started = time.perf_counter()
    with ctx.engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    return {"database_ms": round((time.perf_counter() - started) * 1000, 3)}
