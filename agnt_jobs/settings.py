"""Every setting of agnt-jobs, read once from the environment (prefix ``AGNT_``).

Each field has the default an operator would choose for a single small deployment; a
production deployment sets at least ``AGNT_DATABASE_URL`` and ``INTERNAL_API_TOKEN``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
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

    # --- outbound messages: channel gateway and send queue ---------------------------
    channel_gateway_url: str | None = Field(
        default=None,
        description="Base URL of the channel gateway (POST /messages). Required by "
        "every job that sends a message.",
    )
    channel_gateway_token: SecretStr | None = Field(
        default=None, description="Bearer token for the channel gateway."
    )
    http_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of every outbound HTTP call."
    )
    max_send_attempts: int = Field(
        default=5, ge=1, description="Delivery attempts before a message is DEAD."
    )
    send_backoff_base_seconds: float = Field(
        default=60.0, gt=0, description="First retry delay; doubles per attempt."
    )
    send_backoff_max_seconds: float = Field(
        default=3600.0, gt=0, description="Ceiling of the retry delay."
    )
    send_concurrency: int = Field(
        default=8, ge=1, le=128, description="Messages one job sends at once."
    )
    send_claim_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long a sender holds a claimed message; a crashed sender's "
        "messages are retried after it (the gateway deduplicates).",
    )

    # --- issue 4: bookings, A2A, messaging jobs ---
    send_pending_grace_seconds: float = Field(
        default=120.0,
        ge=0,
        description="retry_failed_sends also delivers PENDING messages older than "
        "this (left behind by a job that crashed between enqueue and delivery).",
    )
    reminder_lead_minutes: int = Field(
        default=120, ge=0, description="A reminder is due this long before the slot."
    )
    reminder_horizon_hours: int = Field(
        default=24, ge=1, description="Reminders are created for slots this close."
    )
    re_engagement_idle_days: int = Field(
        default=14, ge=1, description="Users inactive this long get a nudge."
    )
    re_engagement_cooldown_days: int = Field(
        default=28, ge=1, description="No second nudge within this many days."
    )
    rating_prompt_min_age_hours: float = Field(
        default=2.0, ge=0, description="Prompt a rating this long after completion..."
    )
    rating_prompt_max_age_hours: float = Field(
        default=48.0, gt=0, description="...and no later than this."
    )
    auto_confirm_after_minutes: int = Field(
        default=120,
        ge=1,
        description="A booking the venue received but did not answer for this long "
        "is confirmed automatically.",
    )
    stuck_after_minutes: int = Field(
        default=15,
        ge=1,
        description="A booking between A2A states this long is recovered.",
    )
    orphaned_booking_after_minutes: int = Field(
        default=60,
        ge=1,
        description="A waiting booking with no envelope for this long is cancelled "
        "(recovery had its chance).",
    )
    orphaned_response_grace_minutes: int = Field(
        default=15,
        ge=0,
        description="A venue response this old with no live booking is closed.",
    )
    a2a_envelope_ttl_minutes: int = Field(
        default=60,
        ge=1,
        description="TTL of an envelope a job creates: PENDING past it is EXPIRED.",
    )
    a2a_token: SecretStr | None = Field(
        default=None, description="Bearer token sent to venue agents, if any."
    )
    a2a_max_dispatch_attempts: int = Field(
        default=5, ge=1, description="Dispatch attempts before an envelope EXPIRES."
    )
    a2a_backoff_base_seconds: float = Field(
        default=60.0, gt=0, description="First re-dispatch delay; doubles per try."
    )
    a2a_backoff_max_seconds: float = Field(
        default=3600.0, gt=0, description="Ceiling of the re-dispatch delay."
    )
    a2a_dispatch_concurrency: int = Field(
        default=8, ge=1, le=128, description="Envelopes one job dispatches at once."
    )
    a2a_claim_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long a dispatcher holds a claimed envelope; a crashed "
        "dispatcher's envelopes are retried after it.",
    )
    # --- issue 5: billing ---
    # --- issue 6: lifecycle, housekeeping, webhooks, watchers, health ---
    # --- issue 7: heavy jobs ---
    # --- issue 8: admin ---

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
