"""How a worker runs jobs, how it stops, and when other workers judge it dead."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationInfo, field_validator


class WorkerSettings(BaseModel):
    worker_concurrency: int = Field(
        default=10, ge=1, le=200, description="Jobs one worker runs at once."
    )
    shutdown_graceful_timeout: float = Field(
        default=60.0,
        ge=0,
        description="Seconds a stopping worker (SIGTERM, SIGINT) lets running jobs "
        "finish. It is a bound: past it, each job stops at its next checkpoint or its "
        "current statement is cancelled (its transaction rolled back), its run is "
        "recorded stopped, its finished chunks stand, and it goes back to the queue "
        "for another worker at once; the process exits 0 within this plus 5 s. A "
        "second signal does the same at once and exits 1.",
    )
    # 5,000: measured by ``agnt-jobs bench``, chunks of 1,000 spent as much time on
    # per-chunk round trips and commits as on the rows; a chunk of 5,000 still
    # holds its row locks for tens of milliseconds, and its ids, not its rows,
    # are what a job keeps in memory.
    job_chunk_size: int = Field(
        default=5000, ge=1, description="Rows per transaction in set-based jobs."
    )
    # 5 s and 30 s: a killed worker's job is retried within about 45 s (the stall,
    # a rescue pass every third of it, a fetch), inside the 60 s an operator is
    # promised; six heartbeats per stall leave a living worker room to be slow.
    worker_heartbeat_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often a worker records its heartbeat, until its last job "
        "has ended.",
    )
    worker_claim_cooldown_seconds: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="After a claim that found no job, how long the worker waits "
        "(between half and all of this, at random) before it claims again for a "
        "new job's notification; the notifications "
        "that arrive meanwhile make one claim. Bounds the claims a fleet of idle "
        "workers makes for jobs deferred one at a time (every job's notification "
        "wakes every worker); adds at most this to a job's wait. 0: claim at every "
        "notification.",
    )
    stalled_worker_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A worker silent this long is dead: every worker's rescue pass "
        "(every third of this) retries its running jobs. At least three heartbeats. "
        "A worker whose heartbeats fail stops its running jobs two heartbeats "
        "before this, and exits 1 one heartbeat before it if they still run.",
    )
    probe_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port on which a worker serves GET /livez (its loops run) and "
        "GET /readyz (and the database answers at the code's schema revision) for "
        "an orchestrator's probes. Unset: no probe port.",
    )
    probe_host: str = Field(
        default="0.0.0.0",
        description="Interface the probe port listens on (0.0.0.0: every one, as a "
        "kubelet reaches a pod by its address).",
    )
    stalled_job_max_attempts: int = Field(
        default=3,
        ge=1,
        description="A job whose worker died this many times is failed, not retried.",
    )

    @field_validator("stalled_worker_seconds")
    @classmethod
    def _outlasts_heartbeats(cls, value: float, info: ValidationInfo) -> float:
        # A live worker must never look dead between two heartbeats, or its running
        # jobs would be retried beside it.
        heartbeat = info.data.get("worker_heartbeat_seconds")
        if heartbeat is not None and value < 3 * heartbeat:
            raise ValueError(
                f"must be at least 3 x AGNT_WORKER_HEARTBEAT_SECONDS ({heartbeat})"
            )
        return value
