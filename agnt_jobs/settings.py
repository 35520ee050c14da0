"""Every setting of agnt-jobs, read once from the environment (prefix ``AGNT_``).

Each field has the default an operator would choose for a single small deployment; a
production deployment sets at least ``AGNT_DATABASE_URL`` and ``INTERNAL_API_TOKEN``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

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
    db_retry_initial_seconds: float = Field(
        default=0.25,
        gt=0,
        description="After losing the database, a worker's loops first retry after "
        "about this long, doubling per failure up to AGNT_DB_RETRY_MAX_SECONDS (each "
        "delay drawn from its upper half, so workers do not reconnect in step).",
    )
    db_retry_max_seconds: float = Field(
        default=4.0,
        gt=0,
        description="Longest wait between two reconnection attempts of one loop: "
        "once the database is back, work resumes within about this long.",
    )
    db_outage_report_seconds: float = Field(
        default=30.0,
        gt=0,
        description="While the database stays unreachable, a worker logs one line "
        "per this many seconds (plus one when it is lost and one when it is back).",
    )
    database_outage_limit_seconds: float = Field(
        default=0,
        ge=0,
        description="A worker that cannot reach the database for longer than this "
        "exits with status 1 (for a supervisor to act on). 0: it waits forever.",
    )
    db_connect_timeout_seconds: int = Field(
        default=10,
        ge=1,
        description="libpq connect_timeout of every connection: how long one "
        "connection attempt may take (per host of a multi-host URL).",
    )
    db_silent_after_seconds: int = Field(
        default=30,
        ge=5,
        description="A connection on which the database has not answered for this "
        "long is treated as lost: TCP keepalives (idle a third of it, then probes) and "
        "tcp_user_timeout on every connection, and a liveness query with this timeout "
        "on the LISTEN connection.",
    )

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
    # 5,000: measured by ``agnt-jobs bench``, chunks of 1,000 spent as much time on
    # per-chunk round trips and commits as on the rows; a chunk of 5,000 still
    # holds its row locks for tens of milliseconds, and its ids, not its rows,
    # are what a job keeps in memory.
    job_chunk_size: int = Field(
        default=5000, ge=1, description="Rows per transaction in set-based jobs."
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
    stripe_api_key: SecretStr | None = Field(
        default=None,
        description="Stripe secret key (sk_...). Required by every billing job.",
    )
    stripe_api_base: str = Field(
        default="https://api.stripe.com",
        description="Base URL of the Stripe API; tests and the demo point it at "
        "localstripe.",
    )
    stripe_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of one Stripe call."
    )
    stripe_max_network_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of a Stripe call that failed on the network, with the "
        "same idempotency key.",
    )
    stripe_lookup_max_objects: int = Field(
        default=2000,
        ge=100,
        description="Most Stripe objects one crash-recovery lookup reads; past it "
        "the write is postponed rather than made blind.",
    )
    billing_currency: str = Field(
        default="IDR",
        pattern=r"^[A-Z]{3}$",
        description="ISO code of every amount we bill; amounts are in its minor "
        "units, as Stripe counts them.",
    )
    fee_max_attempts: int = Field(
        default=5,
        ge=1,
        description="Charge attempts of a fee before it is UNCOLLECTIBLE (and "
        "dead-lettered).",
    )
    fee_backoff_base_seconds: float = Field(
        default=3600.0, gt=0, description="First fee retry delay; doubles per attempt."
    )
    fee_backoff_max_seconds: float = Field(
        default=86400.0, gt=0, description="Ceiling of the fee retry delay."
    )
    fee_reconcile_window_hours: float = Field(
        default=168.0,
        gt=0,
        description="reconcile_fee_status checks the fees changed, or given "
        "ledger entries, within this window.",
    )
    api_usage_unit_price: int = Field(
        default=5000,
        ge=0,
        description="Price of one metered API query, in minor units of "
        "AGNT_BILLING_CURRENCY (5000 = Rp 50).",
    )
    # --- issue 6: lifecycle, housekeeping, webhooks, watchers, health ---
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
    b2b_abandon_after_hours: float = Field(
        default=48.0,
        gt=0,
        description="Idle hours before an ACTIVE session is ABANDONED.",
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
    shopee_base_url: str = Field(
        default="https://shopee.co.id", description="Base URL of Shopee's item API."
    )
    tokopedia_base_url: str = Field(
        default="https://gql.tokopedia.com",
        description="Base URL of Tokopedia's GraphQL API.",
    )
    lazada_base_url: str = Field(
        default="https://www.lazada.co.id",
        description="Base URL of Lazada's product detail API.",
    )
    marketplace_concurrency: int = Field(
        default=4, ge=1, le=64, description="Requests in flight per marketplace."
    )
    marketplace_rate_per_second: float = Field(
        default=2.0, gt=0, description="Requests per second per marketplace host."
    )
    marketplace_breaker_failures: int = Field(
        default=5,
        ge=1,
        description="Consecutive retryable failures after which a run stops calling "
        "a marketplace (its remaining watchers wait for the next run).",
    )
    price_watcher_claim_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long a run holds a claimed watcher; a crashed run's "
        "watchers are checked again after it.",
    )
    price_watcher_batch_size: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="Watchers of one marketplace a run claims at a time (default 8 "
        "x AGNT_MARKETPLACE_CONCURRENCY); they are fetched AGNT_MARKETPLACE_"
        "CONCURRENCY at once and recorded in one transaction. A batch must be "
        "fetched within its lease.",
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="Delivery attempts before a webhook is DEAD."
    )
    webhook_backoff_base_seconds: float = Field(
        default=60.0, gt=0, description="First webhook retry delay; doubles."
    )
    webhook_backoff_max_seconds: float = Field(
        default=21600.0, gt=0, description="Ceiling of the webhook retry delay."
    )
    webhook_disable_after_dead: int = Field(
        default=5,
        ge=1,
        description="Dead deliveries in a row (no success between) that disable an "
        "endpoint.",
    )
    webhook_concurrency: int = Field(
        default=8, ge=1, le=128, description="Webhook deliveries sent at once."
    )
    webhook_claim_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long a run holds a claimed delivery before another may "
        "retry it.",
    )
    webhook_batch_size: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="Due deliveries a drain claims at a time (default 8 x "
        "AGNT_WEBHOOK_CONCURRENCY); they are sent AGNT_WEBHOOK_CONCURRENCY at once "
        "and recorded in one transaction. A batch must be sent within its lease.",
    )
    alerts_webhook_url: str | None = Field(
        default=None,
        description="URL the alerts (health changes, weekly DLQ report) are POSTed "
        "to as JSON. Unset: alerts are kept queued, unsent.",
    )
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
    health_check_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Statement timeout of each health check; a check that hits it "
        "is failing.",
    )
    health_results_retention_days: int = Field(
        default=30, ge=1, description="Days a stored health-check result is kept."
    )
    health_dead_letters_max: int = Field(
        default=10, ge=0, description="New dead letters in the window above this fails."
    )

    # --- issue 7: heavy jobs ---
    light_dreaming_window_hours: float = Field(
        default=24.0,
        gt=0,
        description="light_dreaming reads the interactions of "
        "this many hours before its tick.",
    )
    dreaming_max_messages_per_user: int = Field(
        default=200,
        ge=1,
        description="Most recent messages of one user a "
        "reflection reads (bounds memory and LLM prompt size).",
    )
    reflection_max_topics: int = Field(
        default=5, ge=1, description="Topics kept in a reflection or an insight."
    )
    memory_merge_similarity: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="deep_dreaming merges two memories "
        "of a user whose TF-IDF cosine similarity reaches this.",
    )
    deep_dreaming_max_memories_per_user: int = Field(
        default=2000,
        ge=1,
        description="Most recent live memories of one user "
        "deep_dreaming compares for duplicates.",
    )
    faq_extraction_window_days: float = Field(
        default=7.0,
        gt=0,
        description="faq_extraction reads the support messages "
        "of this many days before its tick.",
    )
    faq_compile_window_days: float = Field(
        default=90.0,
        gt=0,
        description="faq_compilation clusters the candidates "
        "asked within this many days before its tick.",
    )
    faq_cluster_similarity: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="A question joins a cluster when its "
        "TF-IDF cosine similarity to the cluster's first question reaches this.",
    )
    faq_min_cluster_size: int = Field(
        default=2,
        ge=1,
        description="Times a cluster's questions must have been "
        "asked for it to become a draft FAQ entry.",
    )
    faq_max_answers_per_cluster: int = Field(
        default=20,
        ge=1,
        description="Most recent agent answers compared to pick a draft's best answer.",
    )
    wiki_delta_settle_seconds: float = Field(
        default=300.0,
        ge=0,
        description="wiki_reconcile leaves delta-log entries "
        "younger than this for its next run, so a late-committing writer is never "
        "skipped.",
    )
    llm_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible API base (…/v1). Unset: the "
        "heavy jobs use their deterministic text method only.",
    )
    llm_model: str | None = Field(default=None, description="Model name for the LLM.")
    llm_api_key: SecretStr | None = Field(
        default=None, description="Bearer key for the LLM API."
    )
    llm_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of one LLM call."
    )
    llm_max_failures: int = Field(
        default=3,
        ge=1,
        description="Failed LLM calls after which a run stops "
        "calling it and uses the deterministic method for the rest.",
    )
    # --- issue 8: admin ---
    admin_session_hours: float = Field(
        default=12.0,
        gt=0,
        le=24 * 30,
        description="How long an admin page sign-in lasts; changing "
        "INTERNAL_API_TOKEN ends every session at once.",
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

    @property
    def webhook_batch(self) -> int:
        """Deliveries a drain claims at a time."""
        return self.webhook_batch_size or 8 * self.webhook_concurrency

    @property
    def price_watcher_batch(self) -> int:
        """Watchers of one marketplace a run claims at a time."""
        return self.price_watcher_batch_size or 8 * self.marketplace_concurrency

    # A claimed batch is held under a lease. If the slowest batch (every request
    # taking the whole HTTP timeout, the marketplace rate limit spacing their
    # starts) could outlast it, another run would claim and send the same rows.
    @field_validator("price_watcher_batch_size")
    @classmethod
    def _watcher_batch_fits_its_lease(
        cls, value: int | None, info: ValidationInfo
    ) -> int | None:
        if value is None:
            return None  # eight rounds of the concurrency, whatever it is
        return _fits_lease(
            value,
            info.data,
            "marketplace_concurrency",
            "price_watcher_claim_seconds",
            rate="marketplace_rate_per_second",
        )

    @field_validator("webhook_batch_size")
    @classmethod
    def _webhook_batch_fits_its_lease(
        cls, value: int | None, info: ValidationInfo
    ) -> int | None:
        if value is None:
            return None
        return _fits_lease(
            value, info.data, "webhook_concurrency", "webhook_claim_seconds"
        )


def _fits_lease(
    batch: int,
    data: dict[str, Any],
    concurrency: str,
    lease: str,
    rate: str | None = None,
) -> int:
    """``batch`` unless its slowest run could outlast the ``lease`` setting."""
    needed = [concurrency, lease, "http_timeout_seconds", *([rate] if rate else [])]
    if any(data.get(name) is None for name in needed):
        return batch  # an earlier setting is invalid and is reported instead
    rounds = -(-batch // data[concurrency])
    slowest = rounds * data["http_timeout_seconds"]
    if rate:
        slowest += batch / data[rate]
    if slowest > data[lease]:
        raise ValueError(
            f"a batch of {batch} may take {slowest:g} s, longer than its lease "
            f"{ENV_PREFIX}{lease.upper()} ({data[lease]:g} s): lower the batch size "
            "or raise the lease"
        )
    return batch


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
        message = _one_line(error)
    # Raised outside the handler so the error carries no context: the stock
    # procrastinate CLI prints every exception in a chain.
    raise ConfigError(message)
