"""The alerts queue: an alert is queued in the same transaction as the fact it is
about (a health check changing state, a week's dead-letter report), under an
idempotency key, then posted to the alerts webhook until it is sent.

Queuing with the fact makes "alert exactly once per change" a database property:
two monitors racing cannot both queue it, and a webhook outage or a crash after
the change loses nothing; the next run posts what is still unsent, oldest first.
Posting is a lease drain (``delivery.lease``): it claims rows with a lease (``FOR
UPDATE SKIP LOCKED``), so two runs never post the same alert, posts them one at a
time and records each batch under its lease; a crash after posting, before the
batch is recorded, re-posts those alerts with the same key once the lease passes.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from agnt_jobs import logs
from agnt_jobs.clients.alerts import AlertsWebhook
from agnt_jobs.clients.errors import ClientError
from agnt_jobs.delivery import lease
from agnt_jobs.settings import Settings

logger = logging.getLogger(__name__)

QUEUE_ALERT = sa.text(
    """
    INSERT INTO alerts (idempotency_key, kind, summary, data)
    VALUES (:key, :kind, :summary, CAST(:data AS jsonb))
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
    """
)

CLAIM_UNSENT = sa.text(
    """
    WITH unsent AS (
        SELECT id FROM alerts
        WHERE sent_at IS NULL AND (claimed_until IS NULL OR claimed_until < now())
        ORDER BY id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE alerts a
    SET claimed_until = now() + make_interval(secs => :lease), attempts = a.attempts + 1
    FROM unsent WHERE a.id = unsent.id
    RETURNING a.id, a.idempotency_key, a.kind, a.summary, a.data, a.claimed_until
    """
)

MARK_SENT = sa.text(
    """
    UPDATE alerts SET sent_at = now(), claimed_until = NULL, last_error = NULL
    WHERE id = :id AND claimed_until = :lease
    """
)

RELEASE = sa.text(
    """
    UPDATE alerts SET claimed_until = NULL, last_error = :error
    WHERE id = :id AND claimed_until = :lease
    """
)

CLAIM_CHUNK = 50


def queue(
    connection: Connection, key: str, kind: str, summary: str, data: dict[str, Any]
) -> bool:
    """Queue an alert unless one with ``key`` exists; True if this call queued it."""
    row = connection.execute(
        QUEUE_ALERT,
        {
            "key": key,
            "kind": kind,
            "summary": summary,
            "data": json.dumps(data, default=str),
        },
    ).first()
    return row is not None


def deliver_pending(
    engine: Engine, settings: Settings, *, stop: Callable[[], bool] | None = None
) -> dict[str, int]:
    """Post every unsent alert in order; stop at the first failure (the rest would
    fail the same way, and later alerts must not overtake earlier ones), or when
    ``stop()`` is true between batches.

    ``alerts_unsent`` counts the alerts of the failing batch left unsent (the one
    that failed and those after it).

    With no alerts webhook configured nothing is posted: alerts stay queued and are
    counted as ``alerts_unsent``, and a warning says what to set.
    """
    webhook = AlertsWebhook.from_settings(settings)
    if webhook is None:
        with engine.connect() as connection:
            unsent = connection.execute(
                sa.text("SELECT count(*) FROM alerts WHERE sent_at IS NULL")
            ).scalar_one()
        if unsent:
            logger.warning(
                "alerts queued but AGNT_ALERTS_WEBHOOK_URL is not set",
                extra=logs.event("alerts_not_configured", unsent=unsent),
            )
        return {"alerts_sent": 0, "alerts_unsent": unsent}
    with webhook:
        drained = drain(engine, settings, webhook).run(stop).counts
    return {
        "alerts_sent": drained.get("alerts_sent", 0),
        "alerts_unsent": drained.get("alerts_unsent", 0),
    }


def drain(
    engine: Engine, settings: Settings, webhook: AlertsWebhook
) -> lease.LeaseDrain[None]:
    """The alerts' lease drain. One post at a time, in the claim's order, and a
    breaker that opens at the first failure: the rest would fail the same way,
    and later alerts must not overtake earlier ones."""
    return lease.LeaseDrain(
        name="alerts",
        engine=engine,
        config=lease.LeaseConfig(
            batch_size=CLAIM_CHUNK,
            concurrency=1,
            lease_seconds=settings.send_claim_seconds,
        ),
        claim_sql=CLAIM_UNSENT,
        send=lambda row: webhook.post(
            row.kind, row.summary, row.data, row.idempotency_key
        ),
        record=_record,
        breaker=lease.Breaker(1, counts=lambda error: True),
    )


def _record(
    connection: Connection,
    rows: Sequence[Row[Any]],
    outcomes: Sequence[ClientError | None],
) -> Counter[str]:
    """Mark the alerts posted before the first failure sent; release the one that
    failed and the ones after it (not posted), with the failure as last error."""
    failed = next(
        (i for i, outcome in enumerate(outcomes) if isinstance(outcome, ClientError)),
        len(rows),
    )
    counts: Counter[str] = Counter()
    if failed:
        sent = [{"id": row.id, "lease": row.claimed_until} for row in rows[:failed]]
        counts["alerts_sent"] = connection.execute(MARK_SENT, sent).rowcount
    if failed < len(rows):
        logger.warning(
            "alert not delivered",
            extra=logs.event("alert_failed", alert_id=rows[failed].id),
        )
        error = str(outcomes[failed])
        released = [
            {"id": row.id, "lease": row.claimed_until, "error": error}
            for row in rows[failed:]
        ]
        connection.execute(RELEASE, released)
        counts["alerts_unsent"] = len(released)
    return counts
