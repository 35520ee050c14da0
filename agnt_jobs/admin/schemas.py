"""The admin view's JSON shapes: what ``/admin/scheduler`` answers, field by field,
so the OpenAPI schema says exactly what a script receives. Every instant is ISO 8601
in UTC (``...Z``); the few ``*_wita`` fields repeat one in the business zone."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field


class Health(StrEnum):
    """A schedule's health, the first that applies in this order (README "Admin
    view" defines each from the views)."""

    NOT_DEPLOYED = "not_deployed"
    NO_BODY = "no_body"
    PAUSED = "paused"
    NOT_CONFIGURED = "not_configured"
    MISSED = "missed"
    FAILING = "failing"
    LATE = "late"
    ON_TIME = "on_time"


RunStatus = Literal["running", "succeeded", "failed", "aborted", "stopped"]


class LastTick(BaseModel):
    at: datetime = Field(description="The tick (UTC).")
    outcome: Literal["deferred", "skipped"]
    reason: str | None = Field(
        description="Why a skipped tick was skipped: paused, queued or misfire."
    )


class LastRun(BaseModel):
    job_id: int = Field(description="The run's Procrastinate job id.")
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    result: dict[str, Any] | None = Field(
        description="The summary the job returned (succeeded runs)."
    )
    error: str | None = Field(description="The exception of a failed run.")


class ScheduleEntry(BaseModel):
    id: str
    description: str
    trigger: str = Field(description="Cron expression, wall-clock time in `zone`.")
    zone: str
    queue: str
    misfire_policy: Literal["skip", "catch_up"]
    enabled: bool = Field(description="False while paused.")
    has_body: bool = Field(description="A job body is deployed for it.")
    missing_settings: list[str] = Field(
        description="Environment variables its job needs that are unset here: "
        "while any is, its ticks are skipped as not_configured."
    )
    deployed: bool = Field(
        description="A worker running this code has written it to the database."
    )
    next_run_at: datetime | None = Field(description="Next tick, UTC.")
    next_run_at_wita: str | None = Field(
        description="The same instant in the business zone (WITA), ISO 8601."
    )
    last_tick: LastTick | None
    last_run: LastRun | None
    health: Health
    health_reason: str = Field(description="Why this health, in one sentence.")


class RemovedSchedule(BaseModel):
    id: str
    description: str
    trigger: str
    zone: str
    queue: str
    first_seen: datetime
    last_seen: datetime = Field(description="Last start of a worker declaring it.")
    removed_at: datetime | None = Field(
        description="When a worker of newer code marked it removed; null while no "
        "worker running this code has started (older workers may still defer it)."
    )
    last_run: LastRun | None


class Problem(BaseModel):
    kind: Literal["no_body", "not_deployed", "changed", "dropped", "stale_worker"]
    schedule_id: str | None
    message: str


class Registry(BaseModel):
    generated_at: datetime
    timezone: str = Field(description="The business zone of the *_wita fields.")
    health_counts: dict[Health, int]
    schedules: list[ScheduleEntry] = Field(
        description="Every schedule the deployed code declares, in declaration order."
    )
    removed: list[RemovedSchedule] = Field(
        description="Schedules the database knows that the deployed code dropped."
    )
    problems: list[Problem] = Field(
        description="Where the code and the database disagree "
        "('agnt-jobs schedules check'); empty when all is well."
    )


class Run(BaseModel):
    """One attempt of a job (a row of ``job_runs``)."""

    job_id: int = Field(description="The run id: the Procrastinate job id.")
    attempt: int
    job: str = Field(description="The job (task) name.")
    queue: str
    status: RunStatus
    trigger: Literal["schedule", "manual"]
    scheduled_tick: datetime | None = Field(
        description="The tick a scheduled run was deferred for."
    )
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    worker_name: str | None
    result: dict[str, Any] | None
    error: str | None


class RunPage(BaseModel):
    runs: list[Run] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters) for the next page; "
        "null on the last page."
    )


class Event(BaseModel):
    id: int
    type: str = Field(description="Procrastinate event: deferred, started, ...")
    at: datetime


class RunDetail(BaseModel):
    job_id: int
    job: str
    status: str = Field(
        description="The job's status (todo, doing, succeeded, failed, cancelled, "
        "aborted) while Procrastinate keeps it, else its last attempt's."
    )
    trigger: Literal["schedule", "manual"]
    scheduled_tick: datetime | None
    deferred_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    queue: str | None
    error: str | None = Field(description="The last attempt's error, if it failed.")
    result: dict[str, Any] | None
    attempts: list[Run]
    events: list[Event] = Field(
        description="Empty once the job is past AGNT_JOB_RETENTION_DAYS."
    )


class Deferred(BaseModel):
    job: str
    job_id: int = Field(description="GET /admin/scheduler/runs/{job_id} follows it.")


class Toggled(BaseModel):
    id: str
    enabled: bool


class ErrorOut(BaseModel):
    detail: str


class AlreadyWaitingOut(BaseModel):
    detail: str
    waiting_job_id: int | None
