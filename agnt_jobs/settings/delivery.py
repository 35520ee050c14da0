"""How jobs talk to the world through queues of their own: the channel gateway and its
send queue, A2A dispatch to venue agents, outbound webhooks and alerts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator

from agnt_jobs.settings.names import ENV_PREFIX


class DeliverySettings(BaseModel):
    http_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of every outbound HTTP call."
    )
    channel_gateway_url: str | None = Field(
        default=None,
        description="Base URL of the channel gateway (POST /messages). Required by "
        "every job that sends a message.",
    )
    channel_gateway_token: SecretStr | None = Field(
        default=None, description="Bearer token for the channel gateway."
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
    send_pending_grace_seconds: float = Field(
        default=120.0,
        ge=0,
        description="retry_failed_sends also delivers PENDING messages older than "
        "this (left behind by a job that crashed between enqueue and delivery).",
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

    @property
    def webhook_batch(self) -> int:
        """Deliveries a drain claims at a time."""
        return self.webhook_batch_size or 8 * self.webhook_concurrency

    @field_validator("webhook_batch_size")
    @classmethod
    def _webhook_batch_fits_its_lease(
        cls, value: int | None, info: ValidationInfo
    ) -> int | None:
        if value is None:
            return None
        return fits_lease(
            value, info.data, "webhook_concurrency", "webhook_claim_seconds"
        )


def fits_lease(
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
