"""drain_webhook_retries: re-send failed outbound webhook deliveries, signed, with
backoff, until they are DELIVERED or DEAD; an endpoint that keeps killing its
deliveries is disabled."""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from agnt_jobs import logs
from agnt_jobs.clients.errors import ClientError
from agnt_jobs.clients.webhooks import WebhookSender
from agnt_jobs.delivery import deadletters, lease
from agnt_jobs.delivery.backoff import backoff_seconds
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job
from agnt_jobs.settings import Settings

logger = logging.getLogger(__name__)

DEAD_LETTER_SOURCE = "webhook"
GONE = 410

# Due FAILED deliveries of enabled endpoints; the claim is a lease (a crashed run's
# rows come back when it passes) and counts the attempt up front, so a delivery
# that crashes its sender cannot retry forever.
CLAIM_DUE = sa.text(
    """
    WITH due AS (
        SELECT d.id FROM webhook_deliveries d
        JOIN webhook_endpoints e ON e.id = d.endpoint_id
        WHERE d.status = 'FAILED' AND d.next_attempt_at <= now()
          AND (d.claimed_until IS NULL OR d.claimed_until < now())
          AND e.disabled_at IS NULL
        ORDER BY d.next_attempt_at, d.id
        LIMIT :limit
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE webhook_deliveries d
    SET claimed_until = now() + make_interval(secs => :lease),
        attempts = d.attempts + 1
    FROM due, webhook_endpoints e
    WHERE d.id = due.id AND e.id = d.endpoint_id
    RETURNING d.id, d.endpoint_id, d.event_type, d.payload, d.attempts,
              d.claimed_until, e.url, e.secret
    """
)

MARK_DELIVERED = sa.text(
    """
    WITH done AS (
        UPDATE webhook_deliveries
        SET status = 'DELIVERED', delivered_at = now(), last_status_code = :code,
            last_error = NULL, claimed_until = NULL
        WHERE id = :id AND claimed_until = :lease
        RETURNING endpoint_id
    ), reset AS (
        UPDATE webhook_endpoints SET dead_count = 0
        WHERE id IN (SELECT endpoint_id FROM done) AND dead_count <> 0
    )
    SELECT count(*) FROM done
    """
)

MARK_FAILED = sa.text(
    """
    UPDATE webhook_deliveries
    SET last_error = :error, last_status_code = :code, claimed_until = NULL,
        next_attempt_at = now() + make_interval(secs => :delay)
    WHERE id = :id AND claimed_until = :lease
    """
)

MARK_DEAD = sa.text(
    """
    UPDATE webhook_deliveries
    SET status = 'DEAD', last_error = :error, last_status_code = :code,
        claimed_until = NULL
    WHERE id = :id AND claimed_until = :lease
    RETURNING endpoint_id
    """
)

# The endpoint's row lock serialises concurrent deaths, so the count and the
# moment of disabling are exact; LOCK_ENDPOINT reads the state before this death.
LOCK_ENDPOINT = sa.text(
    "SELECT disabled_at IS NOT NULL FROM webhook_endpoints WHERE id = :endpoint_id "
    "FOR UPDATE"
)

COUNT_DEAD = sa.text(
    """
    UPDATE webhook_endpoints
    SET dead_count = dead_count + 1,
        disabled_at = CASE WHEN disabled_at IS NULL AND dead_count + 1 >= :threshold
                           THEN now() ELSE disabled_at END,
        disabled_reason = CASE WHEN disabled_at IS NULL AND dead_count + 1 >= :threshold
                               THEN :reason ELSE disabled_reason END
    WHERE id = :endpoint_id
    RETURNING disabled_at IS NOT NULL
    """
)


def _is_final(row: Row[Any], outcome: ClientError, settings: Settings) -> bool:
    return outcome.status == GONE or row.attempts >= settings.webhook_max_attempts


def _kill(
    connection: Connection, row: Row[Any], error: ClientError, settings: Settings
) -> Counter[str]:
    """DEAD plus a dead letter, counted against the endpoint: ``dead`` and, if
    this death disabled the endpoint, ``endpoints_disabled``. Only the lease
    holder may kill the row; for any other, nothing is written or counted."""
    params = {
        "id": row.id,
        "lease": row.claimed_until,
        "error": str(error),
        "code": error.status,
    }
    if connection.execute(MARK_DEAD, params).first() is None:
        return Counter()
    deadletters.record(
        connection,
        [
            deadletters.DeadLetter(
                source=DEAD_LETTER_SOURCE,
                source_id=str(row.id),
                error_class="gone" if error.status == GONE else "exhausted",
                error=str(error),
                attempts=row.attempts,
                payload={"endpoint_id": row.endpoint_id, "event": row.event_type},
            )
        ],
    )
    threshold = settings.webhook_disable_after_dead
    params = {
        "endpoint_id": row.endpoint_id,
        "threshold": threshold,
        "reason": f"{threshold} dead deliveries in a row",
    }
    was_disabled = connection.execute(LOCK_ENDPOINT, params).scalar_one()
    is_disabled = connection.execute(COUNT_DEAD, params).scalar_one()
    if is_disabled and not was_disabled:
        logger.warning(
            "webhook endpoint disabled",
            extra=logs.event("webhook_endpoint_disabled", endpoint_id=row.endpoint_id),
        )
        return Counter(dead=1, endpoints_disabled=1)
    return Counter(dead=1)


def _record(
    settings: Settings,
    connection: Connection,
    rows: Sequence[Row[Any]],
    outcomes: Sequence[int | ClientError],
) -> Counter[str]:
    """Each outcome under the lease its row was claimed with; a row whose lease
    another drain now holds is neither written nor counted."""
    counts: Counter[str] = Counter()
    for row, outcome in zip(rows, outcomes, strict=True):
        claim = {"id": row.id, "lease": row.claimed_until}
        if isinstance(outcome, int):
            done = connection.execute(MARK_DELIVERED, {**claim, "code": outcome})
            counts["delivered"] += done.scalar_one()
        elif _is_final(row, outcome, settings):
            counts.update(_kill(connection, row, outcome, settings))
        else:
            delay = backoff_seconds(
                row.attempts,
                settings.webhook_backoff_base_seconds,
                settings.webhook_backoff_max_seconds,
            )
            params = {**claim, "error": str(outcome), "code": outcome.status}
            failed = connection.execute(MARK_FAILED, {**params, "delay": delay})
            counts["failed"] += failed.rowcount
    return counts


@job("drain_webhook_retries")
def drain_webhook_retries(ctx: RunContext) -> JobResult:
    """Retry FAILED webhook deliveries whose ``next_attempt_at`` has passed, on
    endpoints that are not disabled.

    Each attempt is signed afresh (HMAC-SHA256 over ``timestamp.body`` with the
    endpoint's secret; see ``agnt_jobs.clients.webhooks``) with the same delivery id.
    A 2xx marks it DELIVERED and resets the endpoint's dead count. Any other answer
    or no answer is retried after an exponential backoff; the
    ``webhook_max_attempts``-th failure, or ``410 Gone`` at once, makes it DEAD with
    a dead letter. ``webhook_disable_after_dead`` dead deliveries in a row (no
    success between) disable the endpoint; its FAILED deliveries then wait, untried,
    until an operator re-enables it.

    A lease drain (``delivery.lease``): deliveries are claimed ``webhook_batch_size``
    at a time, sent ``webhook_concurrency`` at once, and each batch recorded in one
    transaction under the claim's lease.
    """
    settings = ctx.settings
    with WebhookSender(
        settings.http_timeout_seconds, settings.webhook_concurrency
    ) as sender:
        totals = drain(ctx.engine, settings, sender).run().counts
    names = ("delivered", "failed", "dead", "endpoints_disabled")
    result = {name: totals.get(name, 0) for name in names}
    logger.info(
        "webhook retries drained", extra=logs.event("webhooks_drained", **result)
    )
    return result


def drain(
    engine: Engine, settings: Settings, sender: WebhookSender
) -> lease.LeaseDrain[int]:
    """The webhook retries' lease drain."""
    return lease.LeaseDrain(
        name=DEAD_LETTER_SOURCE,
        engine=engine,
        config=lease.LeaseConfig(
            batch_size=settings.webhook_batch,
            concurrency=settings.webhook_concurrency,
            lease_seconds=settings.webhook_claim_seconds,
        ),
        claim_sql=CLAIM_DUE,
        send=lambda row: sender.deliver(
            row.url, row.secret, row.id, row.event_type, row.payload, int(time.time())
        ),
        record=functools.partial(_record, settings),
    )
