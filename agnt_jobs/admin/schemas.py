"""The admin view's JSON shapes: what ``/admin/scheduler`` answers, field by field,
so the OpenAPI schema says exactly what a script receives. Every instant is ISO 8601
in UTC (``...Z``); the few ``*_wita`` fields repeat one in the business zone."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from agnt_jobs.admin.errors import unreadable
from agnt_jobs.models.scheduling import SkipReason, TickOutcome


def _readable(value: str) -> str:
    # PostgreSQL refuses NUL in text and no encoding has a lone surrogate; no
    # cron, zone, name or interval has either.
    why = unreadable(value)
    if why is not None:
        raise ValueError(why)
    return value


# The text fields of request bodies: bounded, text that can be stored.
_clean = AfterValidator(_readable)
CronText = Annotated[str, Field(max_length=100), _clean]
ZoneText = Annotated[str, Field(max_length=64), _clean]
PolicyText = Annotated[str, Field(max_length=16), _clean]
IntervalText = Annotated[str, Field(max_length=64), _clean]
# Who acts, named by the caller: a name, never markup or punctuation that could
# pass for something else in an audit row.
WhoText = Annotated[str, Field(max_length=64, pattern=r"^[\w][\w .@+-]*$"), _clean]
JobText = Annotated[str, Field(max_length=128), _clean]


class Health(StrEnum):
    """A schedule's health, the first that applies in this order (README "Admin
    view" defines each from the views)."""

    NOT_DEPLOYED = "not_deployed"
    NO_BODY = "no_body"
    BROKEN = "broken"
    PAUSED = "paused"
    NOT_CONFIGURED = "not_configured"
    MISSED = "missed"
    FAILING = "failing"
    LATE = "late"
    ON_TIME = "on_time"


RunStatus = Literal[
    "running", "succeeded", "failed", "aborted", "stopped", "timed_out", "cancelled"
]


class LastTick(BaseModel):
    at: datetime = Field(description="The tick (UTC).")
    outcome: TickOutcome
    reason: SkipReason | None = Field(
        description="Why a skipped tick was skipped (docs/glossary.md)."
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


class Declared(BaseModel):
    """What the code declares for a schedule (effective values may differ)."""

    cron: str
    zone: str
    misfire_policy: Literal["skip", "catch_up"]
    timeout_seconds: float


class ScheduleEntry(BaseModel):
    id: str
    description: str
    trigger: str = Field(
        description="Cron expression in effect, wall-clock time in `zone`."
    )
    zone: str = Field(description="The zone in effect.")
    queue: str
    misfire_policy: str = Field(
        description="skip or catch_up; any other value is a broken row's, shown "
        "as it is."
    )
    timeout_seconds: float | None = Field(
        description="How long a run may take before it stops at a checkpoint "
        "(null: the row's value cannot be read; the schedule is broken)."
    )
    task_name: str = Field(description="The job it runs.")
    created_in: Literal["code", "sql"] = Field(
        description="Declared in periodic/, or created in the schedules table."
    )
    overridden: bool = Field(
        description="An operator changed a value the code declares."
    )
    declared: Declared | None = Field(
        description="The code's declaration (none for a schedule created in SQL)."
    )
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
    kind: Literal[
        "no_body", "not_deployed", "changed", "dropped", "stale_worker", "broken"
    ]
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
    duplicate_payments: dict[str, int] = Field(
        description="Stripe objects found made twice (payments, invoices, invoice "
        "items) and not made right yet, by status (TO_REFUND, TO_VOID, TO_DELETE, "
        "REPORTED, REFUSED); empty when none."
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


class ScheduleChangeIn(BaseModel):
    """New values for a schedule; those left out stay as they are."""

    cron: CronText | None = Field(
        default=None, description="5 fields, wall-clock time in the zone."
    )
    zone: ZoneText | None = Field(
        default=None, description="A zone of pg_timezone_names, e.g. Asia/Makassar."
    )
    misfire_policy: PolicyText | None = Field(
        default=None, description="skip or catch_up."
    )
    timeout: IntervalText | None = Field(
        default=None,
        description="How long a run may take: a Postgres interval, e.g. '45 minutes'.",
    )
    enabled: bool | None = None
    by: WhoText | None = Field(
        default=None, description="Who changes it, for the audit (schedule_changes)."
    )
    dry_run: bool = Field(
        default=False, description="Check and show the next runs; change nothing."
    )


class ScheduleOut(BaseModel):
    """A schedule as the table has it after a change (or would, on a dry run)."""

    id: str
    cron: str
    zone: str
    misfire_policy: str
    timeout_seconds: float
    enabled: bool
    overridden: bool
    next_runs: list[datetime] = Field(description="The next five runs, UTC.")
    next_runs_wita: list[str]
    dry_run: bool = False


class RunIn(BaseModel):
    at: datetime | None = Field(
        default=None,
        description="Run at this instant instead of now (ISO 8601; no offset: WITA).",
    )
    by: WhoText | None = None


class RunRequestIn(BaseModel):
    by: WhoText | None = None


class Cancelled(BaseModel):
    job_id: int
    outcome: Literal["cancelled", "cancelling"] = Field(
        description="cancelled: it was waiting; cancelling: it stops at its next "
        "checkpoint and ends cancelled."
    )


class Retried(BaseModel):
    job_id: int
    new_job_id: int


class RetryManyIn(BaseModel):
    job: JobText
    since: datetime = Field(
        description="Runs that ended at or after (no offset: WITA)."
    )
    until: datetime | None = Field(default=None, description="... and before (now).")
    by: WhoText | None = None


class RetriedMany(BaseModel):
    retried: list[Retried]
