"""The job bodies, by job name, and what a body receives when it runs.

A body is a plain function ``(RunContext) -> dict`` registered with ``@job("name")``.
It knows nothing of schedules or of Procrastinate: ``agnt_jobs.scheduler.tasks``
turns each body into a task, and tests call bodies directly with a context on their
own database.

A body that talks to an outside system names the settings it cannot run without
(``@job("name", needs=("stripe_api_key",))``). While one is unset the job is *not
configured*: its ticks are decided skipped (``not_configured``) instead of run,
the schedule registry shows which variable it waits for, and the health monitor
fails its ``unconfigured_schedules`` check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from agnt_jobs import checkpoint
from agnt_jobs.settings import ConfigError, Settings
from agnt_jobs.settings.names import variable

JobResult = dict[str, Any]
JobBody = Callable[["RunContext"], JobResult]


@dataclass(frozen=True)
class RunContext:
    """What one run of a job gets (docs/glossary.md: a job is a named body, a run
    one execution of it that was asked for).

    ``tick`` is the scheduled instant the run is for (the periodic tick, or the time
    of a manual trigger): period jobs ("yesterday", "last month") derive their period
    from it so a late or repeated run works on the same period. ``now`` is the wall
    clock when the run started: window jobs ("due now", "idle for 48h") use it.
    A body calls ``checkpoint()`` between the steps of its work; the walker and
    the lease drain call it between chunks and batches (``agnt_jobs.checkpoint``).
    ``job_id`` is the run's job id (``procrastinate_jobs.id``); None when a test
    or the bench calls the body directly.
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


# The body of each job, by job name.
BODIES: dict[str, JobBody] = {}
# The settings fields each job cannot run without, by job name (absent: none).
NEEDS: dict[str, tuple[str, ...]] = {}


def job(name: str, needs: tuple[str, ...] = ()) -> Callable[[JobBody], JobBody]:
    """Register ``func`` as the body of the job ``name``; each job has exactly one
    body. ``needs``: the settings fields (``channel_gateway_url``) it cannot run
    without."""
    unknown = [field for field in needs if field not in Settings.model_fields]
    if unknown:
        raise ValueError(f"job {name!r} needs unknown settings: {unknown}")

    def register(func: JobBody) -> JobBody:
        if name in BODIES and BODIES[name] is not func:
            raise ValueError(f"job {name!r} already has a body: {BODIES[name]!r}")
        BODIES[name] = func
        if needs:
            NEEDS[name] = needs
        return func

    return register


def missing_settings(job_name: str, settings: Settings) -> list[str]:
    """The environment variables the job ``job_name`` waits for: its needed
    settings that are unset or empty. Empty: the job is configured (or needs
    nothing)."""
    return [
        variable(field)
        for field in NEEDS.get(job_name, ())
        if not getattr(settings, field, None)
    ]


class NotConfigured(ConfigError):
    """A job was asked to run while settings it needs are unset."""

    def __init__(self, job_name: str, missing: list[str]) -> None:
        super().__init__(
            f"{job_name} is not configured: set {', '.join(missing)} "
            "(see docs/configuration.md)"
        )
        self.job_name = job_name
        self.missing = missing


def require_configured(job_name: str, settings: Settings) -> None:
    """Raise ``NotConfigured`` if a setting the job ``job_name`` needs is unset."""
    missing = missing_settings(job_name, settings)
    if missing:
        raise NotConfigured(job_name, missing)
