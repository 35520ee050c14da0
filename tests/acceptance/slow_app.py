"""The real App plus one test-only job that takes a while, so acceptance tests can
stop a worker in the middle of a job. Started as
``procrastinate --app=tests.acceptance.slow_app.app worker``."""

from __future__ import annotations

import os
import time

from agnt_jobs.app import app
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job
from agnt_jobs.scheduler.tasks import make_task


@job("test_slow")
def test_slow(ctx: RunContext) -> JobResult:
    seconds = float(os.environ.get("AGNT_TEST_SLOW_SECONDS", "3"))
    time.sleep(seconds)
    return {"slept": seconds}


make_task(app, "test_slow", test_slow)

__all__ = ["app"]
