"""The job bodies, by job id, and what a body receives when it runs.

A body is a plain function ``(RunContext) -> dict`` registered with ``@job("id")``.
It knows nothing of schedules or of Procrastinate: ``agnt_jobs.scheduler.tasks``
turns each body into a task, and tests call bodies directly with a context on their
own database.

A body that talks to an outside system names the settings it cannot run without
(``@job("id", needs=("stripe_api_key",))``). While one is unset the job is *not
configured*: its ticks are decided skipped (``not_configured``) instead of run,
the registry shows which variable it waits for, and the health monitor fails its
``unconfigured_schedules`` check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from agnt_jobs import checkpoint
from agnt_jobs.errors import Conflict
from agnt_jobs.settings import ConfigError, Settings
from agnt_jobs.settings.names import variable

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
# The settings fields each body cannot run without (absent: it needs none).
NEEDS: dict[str, tuple[str, ...]] = {}


def job(job_id: str, needs: tuple[str, ...] = ()) -> Callable[[JobBody], JobBody]:
    """Register ``func`` as the body of ``job_id``; each id has exactly one body.
    ``needs``: the settings fields (``channel_gateway_url``) it cannot run without."""
    unknown = [name for name in needs if name not in Settings.model_fields]
    if unknown:
        raise ValueError(f"job {job_id!r} needs unknown settings: {unknown}")

    def register(func: JobBody) -> JobBody:
        if job_id in BODIES and BODIES[job_id] is not func:
            raise ValueError(f"job {job_id!r} already has a body: {BODIES[job_id]!r}")
        BODIES[job_id] = func
        if needs:
            NEEDS[job_id] = needs
        return func

    return register


def missing_settings(job_id: str, settings: Settings) -> list[str]:
    """The environment variables ``job_id`` waits for: its needed settings that are
    unset or empty. Empty: the job is configured (or needs nothing)."""
    return [
        variable(name)
        for name in NEEDS.get(job_id, ())
        if not getattr(settings, name, None)
    ]


class NotConfigured(ConfigError, Conflict):
    """A job was asked to run while settings it needs are unset."""

    def __init__(self, job_id: str, missing: list[str]) -> None:
        super().__init__(
            f"{job_id} is not configured: set {', '.join(missing)} "
            "(see docs/configuration.md)"
        )
        self.job_id = job_id
        self.missing = missing


def require_configured(job_id: str, settings: Settings) -> None:
    """Raise ``NotConfigured`` if a setting ``job_id`` needs is unset."""
    missing = missing_settings(job_id, settings)
    if missing:
        raise NotConfigured(job_id, missing)
