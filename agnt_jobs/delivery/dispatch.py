"""A2A dispatch: how jobs send envelopes to venue agents, the send queue's A2A twin.

``dispatch_due`` is a lease drain (``delivery.lease``): it claims due envelopes with
a lease (``FOR UPDATE SKIP LOCKED``, then ``next_attempt_at`` is pushed to the end of
the claim and ``attempts`` counted), POSTs each to its venue's agent a few at a time,
and records each outcome under the claim it made (the row still has the attempt
number and status it was claimed with):

* accepted: DISPATCHED, and the booking moves REQUESTED -> PENDING_VENUE;
* a retryable failure: DISPATCH_FAILED, due again after an exponential backoff;
* a permanent failure, or the last allowed attempt: EXPIRED, plus a dead letter.

Only envelopes whose booking still waits on the venue and whose slot is still ahead
are claimed: a request about a cancelled or past booking is never sent. A dispatcher
that crashes leaves its envelopes claimed until the lease passes; they are then sent
again with the same ``Idempotency-Key``, which the venue agent deduplicates.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from agnt_jobs import logs
from agnt_jobs.clients.a2a import A2AClient
from agnt_jobs.clients.errors import ClientError, PermanentError
from agnt_jobs.delivery import deadletters, lease
from agnt_jobs.delivery.backoff import backoff_seconds
from agnt_jobs.settings import Settings

logger = logging.getLogger(__name__)

DEAD_LETTER_SOURCE = "a2a_dispatch"

CLAIM_DUE = """
WITH due AS (
    SELECT e.id FROM a2a_envelopes AS e
    JOIN bookings AS b ON b.id = e.booking_id
    WHERE e.status = ANY(:statuses)
      AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= now())
      AND b.status IN ('REQUESTED', 'PENDING_VENUE') AND b.slot_start > now()
      {filters}
    ORDER BY e.next_attempt_at NULLS FIRST, e.id
    LIMIT :limit
    FOR UPDATE OF e SKIP LOCKED
)
UPDATE a2a_envelopes AS e
SET attempts = e.attempts + 1,
    next_attempt_at = now() + make_interval(secs => :lease)
FROM due, venues AS v
WHERE e.id = due.id AND v.id = e.venue_id
RETURNING e.id, e.booking_id, e.venue_id, e.kind, e.payload, e.expires_at,
          e.attempts, e.status, v.agent_endpoint
"""

# Every accepted envelope of a batch in one statement (the batch's claims as
# arrays): each is marked only under the claim it was sent with.
MARK_DISPATCHED = sa.text(
    """
    WITH claims AS (
        SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[]),
                             CAST(:statuses AS text[])) AS c(id, attempts, status)
    )
    , sent AS (
        UPDATE a2a_envelopes AS e
        SET status = 'DISPATCHED', dispatched_at = now(), status_changed_at = now(),
            next_attempt_at = NULL, last_error = NULL
        FROM claims AS c
        WHERE e.id = c.id AND e.attempts = c.attempts AND e.status = c.status
        RETURNING e.booking_id
    )
    , moved AS (
        UPDATE bookings AS b SET status = 'PENDING_VENUE', status_changed_at = now()
        FROM sent WHERE b.id = sent.booking_id AND b.status = 'REQUESTED'
    )
    SELECT count(*) FROM sent
    """
)

MARK_FAILED = sa.text(
    """
    UPDATE a2a_envelopes
    SET status = 'DISPATCH_FAILED', last_error = :error,
        status_changed_at = CASE WHEN status = 'DISPATCH_FAILED'
                                 THEN status_changed_at ELSE now() END,
        next_attempt_at = now() + make_interval(secs => :delay)
    WHERE id = :id AND attempts = :attempts AND status = :status
    """
)

MARK_EXPIRED = sa.text(
    """
    UPDATE a2a_envelopes
    SET status = 'EXPIRED', last_error = :error, next_attempt_at = NULL,
        status_changed_at = now()
    WHERE id = :id AND attempts = :attempts AND status = :status
    RETURNING id
    """
)


def envelope_body(row: Row[Any]) -> dict[str, Any]:
    """What the venue agent receives."""
    return {
        "id": row.id,
        "kind": row.kind,
        "booking_id": row.booking_id,
        "venue_id": row.venue_id,
        "expires_at": row.expires_at.isoformat(),
        "attempt": row.attempts,
        "payload": row.payload,
    }


def _record(
    settings: Settings,
    connection: Connection,
    rows: Sequence[Row[Any]],
    outcomes: Sequence[int | ClientError],
) -> Counter[str]:
    counts: Counter[str] = Counter()
    letters = []
    accepted = [
        row
        for row, outcome in zip(rows, outcomes, strict=True)
        if not isinstance(outcome, ClientError)
    ]
    if accepted:
        held = connection.execute(
            MARK_DISPATCHED,
            {
                "ids": [row.id for row in accepted],
                "attempts": [row.attempts for row in accepted],
                "statuses": [row.status for row in accepted],
            },
        ).scalar_one()
        counts["dispatched"] += held
        if held < len(accepted):
            counts["claim_lost"] += len(accepted) - held
    for row, outcome in zip(rows, outcomes, strict=True):
        if not isinstance(outcome, ClientError):
            continue
        claim = {"id": row.id, "attempts": row.attempts, "status": row.status}
        if isinstance(outcome, PermanentError) or (
            row.attempts >= settings.a2a_max_dispatch_attempts
        ):
            expired = connection.execute(
                MARK_EXPIRED, {**claim, "error": str(outcome)}
            ).first()
            if expired is None:
                counts["claim_lost"] += 1
                continue
            counts["expired"] += 1
            letters.append(
                deadletters.DeadLetter(
                    source=DEAD_LETTER_SOURCE,
                    source_id=str(row.id),
                    error_class="exhausted" if outcome.retryable else "permanent",
                    error=str(outcome),
                    attempts=row.attempts,
                    payload={
                        "booking_id": row.booking_id,
                        "venue_id": row.venue_id,
                        "endpoint": row.agent_endpoint,
                    },
                )
            )
        else:
            delay = backoff_seconds(
                row.attempts,
                settings.a2a_backoff_base_seconds,
                settings.a2a_backoff_max_seconds,
            )
            params = {**claim, "error": str(outcome), "delay": delay}
            updated = connection.execute(MARK_FAILED, params).rowcount
            counts["dispatch_failed" if updated else "claim_lost"] += 1
    deadletters.record(connection, letters)
    return counts


def drain(
    engine: Engine,
    settings: Settings,
    client: A2AClient,
    *,
    statuses: Sequence[str],
    waiting_since: datetime | None = None,
) -> lease.LeaseDrain[int]:
    """The A2A dispatch's lease drain over the due envelopes in ``statuses``
    (optionally only those whose booking has waited since ``waiting_since``)."""
    filters = ""
    params: dict[str, Any] = {"statuses": list(statuses)}
    if waiting_since is not None:
        filters = "AND b.status_changed_at <= :waiting_since"
        params["waiting_since"] = waiting_since
    return lease.LeaseDrain(
        name=DEAD_LETTER_SOURCE,
        engine=engine,
        config=lease.LeaseConfig(
            batch_size=settings.a2a_dispatch_concurrency * 8,
            concurrency=settings.a2a_dispatch_concurrency,
            lease_seconds=settings.a2a_claim_seconds,
        ),
        claim_sql=sa.text(CLAIM_DUE.format(filters=filters)),
        claim_params=params,
        send=lambda row: client.dispatch(row.agent_endpoint, envelope_body(row)),
        record=functools.partial(_record, settings),
    )


def dispatch_due(
    engine: Engine,
    settings: Settings,
    client: A2AClient,
    *,
    statuses: Sequence[str],
    waiting_since: datetime | None = None,
    stop: Callable[[], bool] | None = None,
) -> dict[str, int]:
    """Dispatch every due envelope in ``statuses``, in batches (optionally only
    those whose booking has been in its state since ``waiting_since`` or longer),
    until none is left or ``stop()`` is true between batches.

    Returns counts: ``dispatched``, ``dispatch_failed`` (to retry), ``expired``
    (given up, dead-lettered) and, if a claim ran out mid-way, ``claim_lost``.
    """
    queue = drain(
        engine, settings, client, statuses=statuses, waiting_since=waiting_since
    )
    totals = queue.run(stop).counts
    names = ("dispatched", "dispatch_failed", "expired")
    result = {name: totals.get(name, 0) for name in names}
    if totals.get("claim_lost"):
        result["claim_lost"] = totals["claim_lost"]
    logger.info("envelopes dispatched", extra=logs.event("a2a_dispatched", **result))
    return result
