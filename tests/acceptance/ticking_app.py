"""The real App plus test-only schedules with a seconds field, so acceptance tests
can watch real workers over several ticks in a few seconds. Started as
``procrastinate --app=tests.acceptance.ticking_app.app worker``.

``AGNT_TEST_SCHEDULES`` (comma-separated) picks which test schedules are declared,
so each test's workers defer only what it watches. ``AGNT_TEST_FAST_RESCUE=1``
redeclares the stalled-job rescuer every second.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from agnt_jobs.app import app
from agnt_jobs.checkpoint import checkpoint
from agnt_jobs.scheduler import deploy
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job
from agnt_jobs.scheduler.declaration import Schedule
from agnt_jobs.scheduler.tasks import make_task
from periodic.maintenance import MAINTENANCE
from tests.support.ticking import SCHEDULES


def _sleeper(variable: str, default: str):
    def body(ctx: RunContext) -> JobResult:
        seconds = float(os.environ.get(variable, default))
        time.sleep(seconds)
        return {"slept": seconds, "tick": ctx.tick.isoformat()}

    return body


def _chunks(ctx: RunContext) -> JobResult:
    """AGNT_TEST_CHUNKS chunks (ten unless set) of 0.2 s, a checkpoint before each;
    every finished chunk is a line of AGNT_TEST_CHUNKS_FILE (what a run finished
    stands when it is stopped)."""
    done = Path(os.environ["AGNT_TEST_CHUNKS_FILE"])
    count = int(os.environ.get("AGNT_TEST_CHUNKS", "10"))
    for chunk in range(count):
        checkpoint()
        time.sleep(0.2)
        with done.open("a") as file:
            file.write(f"{ctx.job_id} {chunk}\n")
    return {"chunks": count}


BODIES = {
    "test_tick": _sleeper("AGNT_TEST_TICK_SECONDS", "0.05"),
    # Longer than its one-second period: without the job lock runs would overlap.
    "test_overlap": _sleeper("AGNT_TEST_OVERLAP_SECONDS", "1.5"),
    "test_catch_up": _sleeper("AGNT_TEST_TICK_SECONDS", "0.05"),
    "test_skip": _sleeper("AGNT_TEST_TICK_SECONDS", "0.05"),
    "test_long": _sleeper("AGNT_TEST_LONG_SECONDS", "3"),
    "test_chunks": _chunks,
}

for name, body in BODIES.items():
    job(name)(body)
    make_task(app, name, body)

wanted = [n for n in os.environ.get("AGNT_TEST_SCHEDULES", "").split(",") if n]
deploy.register(app, [SCHEDULES[name] for name in wanted])
if os.environ.get("AGNT_TEST_FAST_RESCUE") == "1":
    rescue = next(s for s in MAINTENANCE if s.id == "rescue_stalled_jobs")
    deploy.register(
        app,
        [Schedule(rescue.id, "* * * * * *", rescue.description)],
        replace=True,
    )

__all__ = ["app"]
