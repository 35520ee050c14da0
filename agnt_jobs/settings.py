"""Every setting of agnt-jobs, read once from the environment (prefix ``AGNT_``).

Each field has the default an operator would choose for a single small deployment; a
production deployment sets at least ``AGNT_DATABASE_URL`` and ``INTERNAL_API_TOKEN``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "AGNT_"


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable to fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # --- database -------------------------------------------------------------------
    database_url: SecretStr | None = Field(
        default=None,
        description="URL of the Postgres database (postgresql://user:pw@host/db). "
        "Unset: an embedded Postgres is started in AGNT_DATA_DIR.",
    )
    data_dir: Path = Field(
        default=Path(".agnt"),
        description="Directory of the embedded Postgres used when no URL is set.",
    )
    pool_min_size: int = Field(default=1, ge=1, description="Worker pool: min conns.")
    pool_max_size: int = Field(default=12, ge=1, description="Worker pool: max conns.")

    # --- worker ---------------------------------------------------------------------
    worker_concurrency: int = Field(
        default=10, ge=1, le=200, description="Jobs one worker runs at once."
    )
    shutdown_graceful_timeout: float = Field(
        default=60.0,
        ge=0,
        description="Seconds a stopping worker waits for running jobs before "
        "aborting them (they are then retried).",
    )
    job_chunk_size: int = Field(
        default=1000, ge=1, description="Rows per transaction in set-based jobs."
    )

    # --- scheduling -----------------------------------------------------------------
    schedule_misfire_tolerance_seconds: float = Field(
        default=600.0,
        gt=0,
        description="skip schedules: how late the latest tick may still be deferred "
        "(e.g. after a restart); older ticks are recorded as missed.",
    )
    schedule_catch_up_grace_seconds: float = Field(
        default=86400.0,
        gt=0,
        description="catch_up schedules: missed ticks younger than this run after a "
        "restart, oldest first; older ones are recorded missed.",
    )
    worker_heartbeat_seconds: float = Field(
        default=10.0, gt=0, description="How often a worker records its heartbeat."
    )
    stalled_worker_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A worker silent this long is dead: rescue_stalled_jobs retries "
        "its running jobs. At least three heartbeats.",
    )
    stalled_job_max_attempts: int = Field(
        default=3,
        ge=1,
        description="A job whose worker died this many times is failed, not retried.",
    )
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

    # --- admin ----------------------------------------------------------------------
    internal_api_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("INTERNAL_API_TOKEN", "AGNT_INTERNAL_API_TOKEN"),
        description="Token required in X-Internal-Token by /admin/scheduler. Unset: "
        "the admin view refuses every request.",
    )

    # --- logging --------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one JSON object per line; text: for humans."
    )

    # --- time -----------------------------------------------------------------------
    business_timezone: str = Field(
        default="Asia/Makassar",
        description="Zone of 'today', 'this week' and of every schedule (WITA).",
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


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "?"
    variable = (
        "INTERNAL_API_TOKEN"
        if field in ("internal_api_token", "INTERNAL_API_TOKEN")
        else ENV_PREFIX + field.upper()
    )
    value = first.get("input")
    shown = "" if "token" in field.lower() or "url" in field.lower() else f"{value!r}: "
    return f"invalid setting {variable}: {shown}{first['msg']}"


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings; a bad value raises ConfigError naming the variable."""
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigError(_one_line(error)) from None
