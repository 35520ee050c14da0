"""How long each kind of row is kept before the retention jobs delete it."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RetentionSettings(BaseModel):
    job_retention_days: float = Field(
        default=7.0,
        gt=0,
        description="Finished jobs (and their events) older than this are deleted by "
        "clean_finished_jobs.",
    )
    run_history_retention_days: float = Field(
        default=30.0,
        gt=0,
        description="Run history (job_runs) and tick decisions (schedule_ticks) older "
        "than this are deleted by clean_finished_jobs.",
    )
    user_retention_days: int = Field(
        default=30,
        ge=0,
        description="Days a soft-deleted user is kept before purge_deleted_users "
        "hard-deletes it.",
    )
    b2b_session_retention_days: int = Field(
        default=7,
        ge=0,
        description="Days after expiry that an uncompleted B2B onboarding session "
        "is kept.",
    )
    memory_keep_days: int = Field(
        default=90,
        ge=1,
        description="Days an unpinned memory entry may go unused before eviction.",
    )
    dlq_retention_days: int = Field(
        default=7, ge=0, description="Days a resolved dead letter is kept."
    )
    error_log_retention_days: int = Field(
        default=30, ge=1, description="Days an error-log row is kept."
    )
    delta_log_archive_weeks: int = Field(
        default=12,
        ge=1,
        description="ISO weeks of fleet delta log kept in the archive.",
    )
