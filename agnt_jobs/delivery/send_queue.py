"""The send queue: how every job talks to users and venue owners.

A job inserts its messages with ``enqueue`` (or its own ``INSERT ... SELECT`` into
``send_queue`` with ``ON CONFLICT (idempotency_key) DO NOTHING``), then calls
``deliver_due``. Delivery is a lease drain (``delivery.lease``): it claims due rows
with a lease (``FOR UPDATE SKIP LOCKED``, so two senders never take the same row),
sends them through the channel gateway a few at a time, and records each outcome
under the lease it claimed with (``claimed_until``):

* accepted by the gateway: SENT;
* a retryable failure: FAILED, retried after an exponential backoff;
* a permanent failure (the gateway refused the message itself) or the last allowed
  attempt: DEAD, plus a dead letter.

A sender that crashes mid-way leaves its rows claimed; when the lease passes they are
due again and re-sent with the same idempotency key, which the gateway deduplicates.
Attempts are counted at claim time so a message that crashes its sender cannot loop.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from agnt_jobs import logs
from agnt_jobs.clients.channel import ChannelGateway
from agnt_jobs.clients.errors import ClientError, PermanentError
from agnt_jobs.delivery import deadletters, lease
from agnt_jobs.delivery.backoff import backoff_seconds
from agnt_jobs.settings import Settings

logger = logging.getLogger(__name__)

DEAD_LETTER_SOURCE = "send_queue"


@dataclass(frozen=True)
class Message:
    idempotency_key: str
    kind: str
    channel: str
    recipient: str
    body: str
    user_id: int | None = None


INSERT_MESSAGE = sa.text(
    """
    INSERT INTO send_queue (idempotency_key, kind, user_id, channel, recipient, body)
    VALUES (:idempotency_key, :kind, :user_id, :channel, :recipient, :body)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
    """
)

CLAIM_DUE = """
WITH due AS (
    SELECT id FROM send_queue
    WHERE status = ANY(:statuses)
      AND next_attempt_at <= now()
      AND (claimed_until IS NULL OR claimed_until < now())
      {filters}
    ORDER BY next_attempt_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE send_queue AS s
SET claimed_until = now() + make_interval(secs => :lease), attempts = s.attempts + 1
FROM due
WHERE s.id = due.id
RETURNING s.id, s.idempotency_key, s.channel, s.recipient, s.body, s.attempts,
          s.claimed_until
"""

MARK_SENT = sa.text(
    """
    UPDATE send_queue
    SET status = 'SENT', sent_at = now(), gateway_message_id = :gateway_id,
        claimed_until = NULL, last_error = NULL
    WHERE id = :id AND claimed_until = :lease
    """
)

MARK_FAILED = sa.text(
    """
    UPDATE send_queue
    SET status = 'FAILED', last_error = :error, claimed_until = NULL,
        next_attempt_at = now() + make_interval(secs => :delay)
    WHERE id = :id AND claimed_until = :lease
    """
)

MARK_DEAD = sa.text(
    """
    UPDATE send_queue
    SET status = 'DEAD', last_error = :error, claimed_until = NULL
    WHERE id = :id AND claimed_until = :lease
    RETURNING id
    """
)


def enqueue(connection: sa.Connection, messages: Iterable[Message]) -> int:
    """Insert messages not already queued under their key; return how many were new."""
    inserted = 0
    for message in messages:
        row = connection.execute(INSERT_MESSAGE, message.__dict__).first()
        inserted += row is not None
    return inserted


def _claim_sql(
    statuses: Sequence[str], ids: Sequence[int] | None, kinds: Sequence[str] | None
) -> tuple[sa.TextClause, dict[str, Any]]:
    filters: list[str] = []
    params: dict[str, Any] = {"statuses": list(statuses)}
    if ids is not None:
        filters.append("AND id = ANY(:ids)")
        params["ids"] = list(ids)
    if kinds is not None:
        filters.append("AND kind = ANY(:kinds)")
        params["kinds"] = list(kinds)
    return sa.text(CLAIM_DUE.format(filters=" ".join(filters))), params


def _record(
    settings: Settings,
    connection: Connection,
    rows: Sequence[Row[Any]],
    outcomes: Sequence[str | ClientError],
) -> Counter[str]:
    counts: Counter[str] = Counter()
    sent, failed, dead = [], [], []
    for row, outcome in zip(rows, outcomes, strict=True):
        key: dict[str, Any] = {"id": row.id, "lease": row.claimed_until}
        if isinstance(outcome, str):
            sent.append({**key, "gateway_id": outcome})
        elif isinstance(outcome, PermanentError) or (
            row.attempts >= settings.max_send_attempts
        ):
            dead.append((row, outcome, {**key, "error": str(outcome)}))
        else:
            delay = backoff_seconds(
                row.attempts,
                settings.send_backoff_base_seconds,
                settings.send_backoff_max_seconds,
            )
            failed.append({**key, "error": str(outcome), "delay": delay})
    if sent:
        counts["sent"] = connection.execute(MARK_SENT, sent).rowcount
    if failed:
        counts["failed"] = connection.execute(MARK_FAILED, failed).rowcount
    letters = []
    for row, error, params in dead:
        # Only the holder of the lease may kill the row: a sender whose lease
        # expired must not dead-letter a message another sender now owns.
        if connection.execute(MARK_DEAD, params).first() is None:
            continue
        counts["dead"] += 1
        letters.append(
            deadletters.DeadLetter(
                source=DEAD_LETTER_SOURCE,
                source_id=str(row.id),
                error_class="permanent" if not error.retryable else "exhausted",
                error=str(error),
                attempts=row.attempts,
                payload={"idempotency_key": row.idempotency_key},
            )
        )
    deadletters.record(connection, letters)
    lost = len(rows) - sum(counts.values())
    if lost:
        # Our lease ran out while sending and another sender re-claimed the rows;
        # it records them, the gateway deduplicated the second send.
        counts["lease_lost"] = lost
    return counts


def drain(
    engine: Engine,
    settings: Settings,
    gateway: ChannelGateway,
    *,
    statuses: Sequence[str] = ("PENDING", "FAILED"),
    ids: Sequence[int] | None = None,
    kinds: Sequence[str] | None = None,
) -> lease.LeaseDrain[str]:
    """The send queue's lease drain over the due messages in ``statuses``
    (optionally only ``ids`` or ``kinds``)."""
    claim_sql, claim_params = _claim_sql(statuses, ids, kinds)
    return lease.LeaseDrain(
        name=DEAD_LETTER_SOURCE,
        engine=engine,
        config=lease.LeaseConfig(
            batch_size=settings.send_concurrency * 8,
            concurrency=settings.send_concurrency,
            lease_seconds=settings.send_claim_seconds,
        ),
        claim_sql=claim_sql,
        claim_params=claim_params,
        send=lambda row: gateway.send(
            row.recipient, row.channel, row.body, row.idempotency_key
        ),
        record=functools.partial(_record, settings),
    )


def deliver_due(
    engine: Engine,
    settings: Settings,
    gateway: ChannelGateway,
    *,
    statuses: Sequence[str] = ("PENDING", "FAILED"),
    ids: Sequence[int] | None = None,
    kinds: Sequence[str] | None = None,
    stop: Callable[[], bool] | None = None,
) -> dict[str, int]:
    """Deliver every due message (optionally only ``ids`` or ``kinds``), in batches,
    until none is left or ``stop()`` is true between batches.

    Returns counts: ``sent``, ``failed`` (to retry), ``dead`` and ``lease_lost``.
    """
    queue = drain(engine, settings, gateway, statuses=statuses, ids=ids, kinds=kinds)
    totals = queue.run(stop).counts
    result = {name: totals.get(name, 0) for name in ("sent", "failed", "dead")}
    if totals.get("lease_lost"):
        result["lease_lost"] = totals["lease_lost"]
    logger.info(
        "send queue delivered", extra=logs.event("send_queue_delivered", **result)
    )
    return result
