"""The real App plus test-only jobs that take a while, so acceptance tests can stop
a worker in the middle of a job. Started as
``procrastinate --app=tests.acceptance.slow_app.app worker``."""

from __future__ import annotations

import asyncio
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


@job("test_blocked")
def test_blocked(ctx: RunContext) -> JobResult:
    """Adds one to row 1 of ``test_locked``: blocks while another session holds
    the row."""
    with ctx.engine.begin() as connection:
        connection.execute(sa.text("UPDATE test_locked SET n = n + 1 WHERE id = 1"))
    return {"added": 1}


@job("test_far")
def test_far(ctx: RunContext) -> JobResult:
    """A long step between two checkpoints, in Python (no statement to cancel):
    AGNT_TEST_FAR_SECONDS, then one row in ``test_far_done``."""
    ctx.checkpoint()
    time.sleep(float(os.environ.get("AGNT_TEST_FAR_SECONDS", "60")))
    ctx.checkpoint()
    with ctx.engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO test_far_done VALUES (:j)"), {"j": 1})
    return {"slept": True}


@app.task(name="test_async_sleep", pass_context=False)
async def test_async_sleep() -> dict[str, float]:
    """An async body: AGNT_TEST_ASYNC_SECONDS of waiting."""
    seconds = float(os.environ.get("AGNT_TEST_ASYNC_SECONDS", "60"))
    await asyncio.sleep(seconds)
    return {"slept": seconds}


make_task(app, "test_slow", test_slow)
make_task(app, "test_steps", test_steps)
make_task(app, "test_blocked", test_blocked)
make_task(app, "test_far", test_far)

__all__ = ["app"]
