"""The job bodies, by job id, and what a body receives when it runs.

A body is a plain function ``(RunContext) -> dict`` registered with ``@job("id")``.
It knows nothing of schedules or of Procrastinate: ``agnt_jobs.scheduler.tasks``
turns each body into a task, and tests call bodies directly with a context on their
own database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from agnt_jobs import checkpoint
from agnt_jobs.settings import Settings

JobResult = dict[str, Any]
JobBody = Callable[["RunContext"], JobResult]


@dataclass(frozen=True)
class RunContext:
    """What one run of a job gets.

    ``tick`` is the scheduled instant the run is for (the periodic tick, or the time
    of a manual trigger): period jobs ("yesterday", "last month") derive their period
    from it so a late or repeated run works on the same period. ``now`` is the wall
    clock when the run started: window jobs ("due now", "idle for 48h") use it.
    A body calls ``checkpoint()`` between the steps of its work; the walker and
    the lease drain call it between chunks and batches (``agnt_jobs.checkpoint``).
    """

    engine: Engine
    settings: Settings
    tick: datetime
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    job_id: int | None = None

    def checkpoint(self) -> None:
        """A point where stopping is safe: no chunk, batch or step is half done.
        Raises ``RunStopped`` if the run was asked to stop."""
        checkpoint.checkpoint()


BODIES: dict[str, JobBody] = {}


def job(job_id: str) -> Callable[[JobBody], JobBody]:
    """Register ``func`` as the body of ``job_id``; each id has exactly one body."""

    def register(func: JobBody) -> JobBody:
        if job_id in BODIES and BODIES[job_id] is not func:
            raise ValueError(f"job {job_id!r} already has a body: {BODIES[job_id]!r}")
        BODIES[job_id] = func
        return func

    return register
