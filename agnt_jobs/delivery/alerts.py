"""The alerts outbox: an alert is queued in the same transaction as the fact it is
about (a health check changing state, a week's dead-letter report), under an
idempotency key, then posted to the alerts webhook until it is sent.

Queuing with the fact makes "alert exactly once per change" a database property:
two monitors racing cannot both queue it, and a webhook outage or a crash after
the change loses nothing; the next run posts what is still unsent, oldest first.
Posting claims rows with a lease (``FOR UPDATE SKIP LOCKED``), so two runs never
post the same alert; a crash after posting re-posts it with the same key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from agnt_jobs import logs
from agnt_jobs.clients.alerts import AlertsWebhook
from agnt_jobs.clients.errors import ClientError
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
    WHERE id = ANY(:ids) AND claimed_until = :lease
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


def deliver_pending(engine: Engine, settings: Settings) -> dict[str, int]:
    """Post every unsent alert in order; stop at the first failure (the rest would
    fail the same way, and later alerts must not overtake earlier ones).

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
    sent = 0
    with webhook:
        while True:
            with engine.begin() as connection:
                rows = connection.execute(
                    CLAIM_UNSENT,
                    {"limit": CLAIM_CHUNK, "lease": settings.send_claim_seconds},
                ).all()
            for index, row in enumerate(rows):
                try:
                    webhook.post(row.kind, row.summary, row.data, row.idempotency_key)
                except ClientError as error:
                    _release(engine, rows[index:], str(error))
                    logger.warning(
                        "alert not delivered",
                        extra=logs.event("alert_failed", alert_id=row.id),
                    )
                    return {"alerts_sent": sent, "alerts_unsent": len(rows) - index}
                with engine.begin() as connection:
                    connection.execute(
                        MARK_SENT, {"id": row.id, "lease": row.claimed_until}
                    )
                sent += 1
            if len(rows) < CLAIM_CHUNK:
                return {"alerts_sent": sent, "alerts_unsent": 0}


def _release(engine: Engine, rows: Sequence[Any], error: str) -> None:
    with engine.begin() as connection:
        for lease in {row.claimed_until for row in rows}:
            ids = [row.id for row in rows if row.claimed_until == lease]
            connection.execute(RELEASE, {"ids": ids, "lease": lease, "error": error})
