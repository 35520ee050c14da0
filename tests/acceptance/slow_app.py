"""The real App plus test-only jobs that take a while, so acceptance tests can stop
a worker in the middle of a job. Started as
``procrastinate --app=tests.acceptance.slow_app.app worker``."""

from __future__ import annotations

import os
import time

import sqlalchemy as sa

from agnt_jobs.app import app
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job
from agnt_jobs.scheduler.tasks import make_task


@job("test_slow")
def test_slow(ctx: RunContext) -> JobResult:
    seconds = float(os.environ.get("AGNT_TEST_SLOW_SECONDS", "3"))
    time.sleep(seconds)
    return {"slept": seconds}


@job("test_steps")
def test_steps(ctx: RunContext) -> JobResult:
    """Commits steps 1..AGNT_TEST_STEPS into ``test_steps`` one transaction each,
    with a checkpoint before each, resuming after the last step committed. The
    table's primary key makes a step done twice fail the job."""
    steps = int(os.environ.get("AGNT_TEST_STEPS", "50"))
    pause = float(os.environ.get("AGNT_TEST_STEP_SECONDS", "0.2"))
    with ctx.engine.connect() as connection:
        done = connection.execute(
            sa.text("SELECT coalesce(max(step), 0) FROM test_steps")
        ).scalar_one()
    for step in range(done + 1, steps + 1):
        ctx.checkpoint()
        with ctx.engine.begin() as connection:
            connection.execute(
                sa.text("INSERT INTO test_steps (step, job_id) VALUES (:s, :j)"),
                {"s": step, "j": ctx.job_id},
            )
        time.sleep(pause)
    return {"steps": steps - done}


make_task(app, "test_slow", test_slow)
make_task(app, "test_steps", test_steps)

__all__ = ["app"]
