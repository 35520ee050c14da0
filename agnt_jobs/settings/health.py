"""The platform health monitor's checks and their thresholds."""

from __future__ import annotations

from pydantic import BaseModel, Field


class HealthSettings(BaseModel):
    health_db_latency_max_ms: float = Field(
        default=250.0, gt=0, description="Database round trip above this fails."
    )
    health_queue_depth_max: int = Field(
        default=500, ge=0, description="Due jobs waiting above this fails."
    )
    health_oldest_job_max_seconds: float = Field(
        default=900.0, gt=0, description="Oldest due job waiting longer fails."
    )
    health_failed_jobs_window_seconds: float = Field(
        default=3600.0, gt=0, description="Window of the failed-jobs check."
    )
    health_failed_jobs_max: int = Field(
        default=0, ge=0, description="Jobs failed in the window above this fails."
    )
    health_schedule_grace_seconds: float = Field(
        default=600.0,
        ge=0,
        description="How long past its next run an enabled schedule may go with no "
        "worker deciding the tick before missed_schedules fails (overdue); also how "
        "late a run may be deferred or start before it is reported late.",
    )
    health_missed_ticks_window_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Ticks recorded missed (misfire) within this window fail "
        "missed_schedules; paused, queued and late ticks in it are reported.",
    )
    health_send_backlog_max: int = Field(
        default=200, ge=0, description="Due send-queue messages above this fails."
    )
    health_webhook_backlog_max: int = Field(
        default=200, ge=0, description="Due webhook deliveries above this fails."
    )
    health_dead_letters_window_seconds: float = Field(
        default=3600.0, gt=0, description="Window of the dead-letter growth check."
    )
    health_dead_letters_max: int = Field(
        default=10, ge=0, description="New dead letters in the window above this fails."
    )
    health_check_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Statement timeout of each health check; a check that hits it "
        "is failing.",
    )
    health_results_retention_days: int = Field(
        default=30, ge=1, description="Days a stored health-check result is kept."
    )
