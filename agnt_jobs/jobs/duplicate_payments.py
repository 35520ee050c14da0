"""Payments found made twice for one fee, made right: the extra payment is refunded
through the same protocol as every Stripe write, or, with
``AGNT_STRIPE_DUPLICATE_ACTION=report``, left to a person.

When retry_pending_fees finds more than one succeeded payment intent for a fee, it
records, in the fee's own transaction, each extra payment as a ``payment`` ledger
entry (the money was received) and as a ``duplicate_payments`` row: the intended
refund, under the deterministic key ``refund:{payment_intent}``, ``TO_REFUND`` (or
``REPORTED``). Then each ``TO_REFUND`` row is handled in one transaction holding its
row lock across the Stripe calls and the recording: look for the refund an earlier
attempt made (by the key in its metadata), else refund under that key; record
``REFUNDED`` with a ``refund`` ledger entry. A crash rolls the recording back and
the next run finds the refund instead of making a second. Stripe unavailable: the
row stays ``TO_REFUND`` for the next run. Stripe refusing (the payment was already
refunded by hand, say): ``REFUSED``, reported. Every row that is not ``REFUNDED``
fails the health monitor's ``duplicate_payments`` check and shows on /metrics.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from agnt_jobs import logs
from agnt_jobs.clients.errors import ClientError, PermanentError, RetryableError
from agnt_jobs.clients.stripe_client import StripeGateway
from agnt_jobs.jobs import errorlog, ledger
from agnt_jobs.jobs.lost_answers import LostAnswers
from agnt_jobs.scheduler.bodies import RunContext
from agnt_jobs.walk import due_ids

logger = logging.getLogger(__name__)

RECORD = sa.text(
    """
    INSERT INTO duplicate_payments (
        fee_id, payment_intent, stripe_customer_id, amount, currency,
        idempotency_key, status)
    VALUES (:fee_id, :payment_intent, :customer, :amount, :currency,
            'refund:' || :payment_intent, :status)
    ON CONFLICT (payment_intent) DO NOTHING
    RETURNING id
    """
)

TO_REFUND = sa.text(
    """
    SELECT id, found_at AS due_at FROM duplicate_payments
    WHERE status = 'TO_REFUND' AND (found_at, id) > (:after_at, :after_id)
    ORDER BY found_at, id
    LIMIT :limit
    """
)

LOCK = sa.text(
    "SELECT * FROM duplicate_payments WHERE id = :id AND status = 'TO_REFUND' "
    "FOR UPDATE SKIP LOCKED"
)

RECORD_OUTCOME = sa.text(
    """
    UPDATE duplicate_payments
    SET status = :status, stripe_refund_id = :refund, last_error = :error,
        refunded_at = CASE WHEN :status = 'REFUNDED' THEN now() END,
        updated_at = now()
    WHERE id = :id
    """
)


def record(
    connection: Connection,
    fee: Row[Any],
    extra: list[dict[str, Any]],
    action: str,
    report_since: datetime,
) -> int:
    """In the fee's transaction: the extra payments in the ledger, each as a refund
    to make (``action`` 'refund') or to report ('report'). Returns how many were
    new."""
    status = "TO_REFUND" if action == "refund" else "REPORTED"
    found = 0
    for intent in extra:
        amount = int(intent.get("amount") or fee.amount)
        ledger.append(
            connection,
            [
                ledger.Entry(
                    idempotency_key=f"fee:{fee.id}:payment:{intent['id']}",
                    entry_type="payment",
                    amount=amount,
                    currency=fee.currency,
                    venue_id=fee.venue_id,
                    stripe_customer_id=fee.stripe_customer_id,
                    fee_id=fee.id,
                    stripe_reference=intent["id"],
                    description=f"duplicate payment of fee {fee.id}",
                )
            ],
        )
        found += (
            connection.execute(
                RECORD,
                {
                    "fee_id": fee.id,
                    "payment_intent": intent["id"],
                    "customer": fee.stripe_customer_id,
                    "amount": amount,
                    "currency": fee.currency,
                    "status": status,
                },
            ).first()
            is not None
        )
    ids = [intent["id"] for intent in extra]
    what = "refunding" if action == "refund" else "refund by hand"
    errorlog.report(
        connection,
        "retry_pending_fees",
        f"fee:{fee.id}:charged more than once",
        f"fee {fee.id} was charged {1 + len(extra)} times: {what} {', '.join(ids)}",
        report_since,
        {"fee_id": fee.id, "payment_intents": ids, "action": action},
        level="CRITICAL",
    )
    return found


def _refund_one(
    ctx: RunContext, stripe: StripeGateway, lost: LostAnswers, row_id: int
) -> str:
    with ctx.engine.begin() as connection:
        row = connection.execute(LOCK, {"id": row_id}).first()
        if row is None:
            return "skipped"
        key = row.idempotency_key
        try:
            refund = stripe.find_refund(row.payment_intent, key)
            if refund is None:
                refund = _refund_or_find(stripe, lost, row)
        except PermanentError as refused:
            _record(connection, row, "REFUSED", None, str(refused))
            return "refused"
        except ClientError as error:
            connection.execute(
                sa.text(
                    "UPDATE duplicate_payments SET last_error = :error, "
                    "updated_at = now() WHERE id = :id"
                ),
                {"id": row.id, "error": str(error)},
            )
            return "failed"
        _record(connection, row, "REFUNDED", refund, None)
        ledger.append(
            connection,
            [
                ledger.Entry(
                    idempotency_key=key,
                    entry_type="refund",
                    amount=int(refund.get("amount") or row.amount),
                    currency=row.currency,
                    stripe_customer_id=row.stripe_customer_id,
                    fee_id=row.fee_id,
                    stripe_reference=refund["id"],
                    description=f"refund of duplicate payment {row.payment_intent}",
                )
            ],
        )
    return "refunded"


def _refund_or_find(
    stripe: StripeGateway, lost: LostAnswers, row: Row[Any]
) -> dict[str, Any]:
    try:
        return stripe.refund_payment(
            row.payment_intent,
            row.amount,
            row.idempotency_key,
            {"agnt_fee_id": str(row.fee_id)},
        )
    except RetryableError:
        _, refund = lost.look(
            lambda: stripe.find_refund(row.payment_intent, row.idempotency_key),
            row.idempotency_key,
        )
        if refund is None:
            raise
        return refund


def _record(
    connection: Connection,
    row: Row[Any],
    status: str,
    refund: dict[str, Any] | None,
    error: str | None,
) -> None:
    connection.execute(
        RECORD_OUTCOME,
        {
            "id": row.id,
            "status": status,
            "refund": (refund or {}).get("id"),
            "error": error,
        },
    )
    logger.log(
        logging.INFO if status == "REFUNDED" else logging.ERROR,
        "duplicate payment refund recorded",
        extra=logs.event(
            f"duplicate_payment_{status.lower()}",
            fee_id=row.fee_id,
            payment_intent=row.payment_intent,
            refund=(refund or {}).get("id"),
            error=error,
        ),
    )


def refund_due(
    ctx: RunContext, stripe: StripeGateway, lost: LostAnswers
) -> Counter[str]:
    """Refund every duplicate payment still TO_REFUND: the counts by outcome."""
    counts: Counter[str] = Counter()
    for row_id in due_ids(ctx.engine, TO_REFUND, ctx.now, ctx.settings.job_chunk_size):
        counts[_refund_one(ctx, stripe, lost, row_id)] += 1
    return counts
