"""What every benchmark family is given: the scratch server, the scale, and a way to
tell the operator what it is doing (a scale-100 run takes a while)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agnt_jobs import logs
from agnt_jobs.testing.scratch import ScratchServer

logger = logging.getLogger(__name__)

# The benchmark tasks (agnt_jobs.bench.apps), named here so that the bench process
# itself never imports the Apps.
NOOP = "bench_noop"
NOOP_QUEUE = "bench"
TICK = "bench_tick"
# The shutdown benchmark's jobs (agnt_jobs.bench.shutdown): a checkpointed job, a
# job blocked in SQL, a job waiting on a slow peer.
STOP_JOBS = ("bench_steps", "bench_blocked", "bench_peer")


@dataclass
class BenchContext:
    server: ScratchServer
    scale: int
    #: Repetitions of each throughput measurement (the median is reported).
    repeats: int = 3
    #: Seconds each scheduling run watches the ticks.
    schedule_seconds: float = 30.0
    #: The instant fixtures are built around and jobs run at.
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    quiet: bool = False

    def say(self, message: str) -> None:
        logger.info(message, extra=logs.event("bench_progress"))
        if not self.quiet:
            print(f"[bench] {message}", file=sys.stderr, flush=True)


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.05
) -> Any:
    """The first true value of ``predicate``, asked every ``poll`` seconds; a
    benchmark whose ``what`` does not happen within ``timeout`` fails with it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise RuntimeError(f"{what} did not happen in time")
