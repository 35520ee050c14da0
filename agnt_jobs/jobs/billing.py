"""The monthly venue invoice on Stripe.

Money safety, here as in ``fees.py`` and ``api_keys.py``: the intended Stripe write is
committed first (a row with a deterministic key), then each row is handled in its own
transaction that holds the row lock across the Stripe call and the recording of its
result. A crash rolls the recording back and releases the lock; the next run looks
for the object the crashed attempt made (by the key in its metadata) before writing
again. Two copies of a job never work on one row (``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from agnt_jobs import ledger, timeutil
from agnt_jobs.clients.errors import ClientError
from agnt_jobs.clients.stripe_client import CardDeclinedError, StripeGateway
from agnt_jobs.jobs.registry import JobResult, RunContext, job
from agnt_jobs.models.billing import BILLABLE_SUBSCRIPTION_STATUSES

logger = logging.getLogger(__name__)

# Stripe invoice status -> ours.
INVOICE_STATUS = {
    "draft": "OPEN",
    "open": "OPEN",
    "paid": "PAID",
    "void": "VOID",
    "uncollectible": "UNCOLLECTIBLE",
}

PLAN_INVOICES = sa.text(
    """
    WITH chunk AS (
        SELECT id, venue_id, stripe_customer_id, stripe_subscription_id
        FROM subscriptions
        WHERE id > :after AND status = ANY(:billable)
          AND stripe_subscription_id IS NOT NULL AND created_at < :period_end
        ORDER BY id
        LIMIT :limit
    ), planned AS (
        INSERT INTO monthly_invoices (
            venue_id, month, period_start, period_end, stripe_customer_id,
            stripe_subscription_id, idempotency_key, description, currency)
        SELECT venue_id, :month, :period_start, :period_end, stripe_customer_id,
               stripe_subscription_id, 'invoice:' || venue_id || ':' || :month,
               -- ends with stripe_client.ref_tag(key), which the lookup matches
               'AGNT venue subscription ' || :month || ' '
                   || '[invoice:' || venue_id || ':' || :month || ']',
               :currency
        FROM chunk
        ON CONFLICT DO NOTHING
        RETURNING id
    )
    SELECT (SELECT max(id) FROM chunk) AS last_id,
           (SELECT count(*) FROM planned) AS planned
    """
)

UNSETTLED = sa.text(
    """
    SELECT id FROM monthly_invoices
    WHERE month = :month AND status IN ('PENDING', 'OPEN') AND id > :after
    ORDER BY id
    LIMIT :limit
    """
)

LOCK_INVOICE = sa.text(
    """
    SELECT * FROM monthly_invoices
    WHERE id = :id AND status = :status AND payment_attempts = 0
    FOR UPDATE SKIP LOCKED
    """
)

RECORD_CREATED = sa.text(
    """
    UPDATE monthly_invoices
    SET stripe_invoice_id = :stripe_id, status = :status, amount_due = :amount_due,
        currency = :currency, last_error = NULL, updated_at = now()
    WHERE id = :id
    """
)

RECORD_PAYMENT = sa.text(
    """
    UPDATE monthly_invoices
    SET status = :status, amount_paid = :amount_paid,
        payment_attempts = payment_attempts + :attempted, last_error = :error,
        paid_at = CASE WHEN :status = 'PAID' THEN now() END, updated_at = now()
    WHERE id = :id
    """
)

RECORD_ERROR = sa.text(
    "UPDATE monthly_invoices SET last_error = :error, updated_at = now() WHERE id = :id"
)


def _ids(engine: Engine, query: sa.TextClause, params: dict[str, Any]) -> Iterator[int]:
    """Ids from ``query`` in keyset chunks (``:after``, ``:limit``), each chunk read
    in its own short transaction."""
    after = 0
    while True:
        with engine.connect() as connection:
            ids = [
                row[0] for row in connection.execute(query, {**params, "after": after})
            ]
        yield from ids
        if len(ids) < params["limit"]:
            return
        after = ids[-1]


def _plan(ctx: RunContext, period: timeutil.Period) -> int:
    """Record the intended invoice of every billable venue for ``period``."""
    planned, after = 0, 0
    while True:
        with ctx.engine.begin() as connection:
            row = connection.execute(
                PLAN_INVOICES,
                {
                    "after": after,
                    "limit": ctx.settings.job_chunk_size,
                    "billable": list(BILLABLE_SUBSCRIPTION_STATUSES),
                    "month": period.label,
                    "period_start": period.start,
                    "period_end": period.end,
                    "currency": ctx.settings.billing_currency,
                },
            ).one()
        if row.last_id is None:
            return planned
        planned += row.planned
        after = row.last_id


def _record_created(connection: Connection, row: Row[Any], invoice: dict) -> None:
    status = INVOICE_STATUS.get(invoice.get("status") or "draft", "OPEN")
    amount_due = int(invoice.get("amount_due") or 0)
    connection.execute(
        RECORD_CREATED,
        {
            "id": row.id,
            "stripe_id": invoice["id"],
            "status": "OPEN" if status == "PAID" else status,
            "amount_due": amount_due,
            "currency": (invoice.get("currency") or row.currency).upper(),
        },
    )
    if amount_due > 0:
        ledger.append(
            connection,
            [
                ledger.Entry(
                    idempotency_key=f"{row.idempotency_key}:charge",
                    entry_type="charge",
                    amount=amount_due,
                    currency=(invoice.get("currency") or row.currency).upper(),
                    venue_id=row.venue_id,
                    stripe_customer_id=row.stripe_customer_id,
                    invoice_id=row.id,
                    stripe_reference=invoice["id"],
                    description=row.description,
                )
            ],
        )


def _record_payment(
    connection: Connection,
    row: Row[Any],
    invoice: dict | None,
    attempted: bool,
    error: str | None,
) -> str:
    status = INVOICE_STATUS.get((invoice or {}).get("status") or "open", "OPEN")
    amount_paid = int((invoice or {}).get("amount_paid") or 0) if invoice else None
    connection.execute(
        RECORD_PAYMENT,
        {
            "id": row.id,
            "status": status,
            "amount_paid": amount_paid,
            "attempted": int(attempted),
            "error": error if status != "PAID" else None,
        },
    )
    if status == "PAID" and amount_paid:
        ledger.append(
            connection,
            [
                ledger.Entry(
                    idempotency_key=f"{row.idempotency_key}:payment",
                    entry_type="payment",
                    amount=amount_paid,
                    currency=row.currency,
                    venue_id=row.venue_id,
                    stripe_customer_id=row.stripe_customer_id,
                    invoice_id=row.id,
                    stripe_reference=row.stripe_invoice_id,
                    description=row.description,
                )
            ],
        )
    return "paid" if status == "PAID" else "payment_failed"


def _create(engine: Engine, stripe: StripeGateway, invoice_id: int) -> str | None:
    """PENDING -> OPEN: find the invoice a crashed attempt made, else create it."""
    with engine.begin() as connection:
        row = connection.execute(
            LOCK_INVOICE, {"id": invoice_id, "status": "PENDING"}
        ).first()
        if row is None:
            return None
        key = row.idempotency_key
        try:
            invoice = stripe.find_invoice(row.stripe_customer_id, key)
            outcome = "recovered" if invoice else "created"
            if invoice is None:
                invoice = stripe.create_invoice(
                    row.stripe_customer_id,
                    row.stripe_subscription_id,
                    row.description,
                    key,
                    {"agnt_venue_id": str(row.venue_id), "agnt_month": row.month},
                )
        except ClientError as error:
            connection.execute(RECORD_ERROR, {"id": row.id, "error": str(error)})
            logger.warning(
                "monthly invoice not created",
                extra={
                    "action": "invoice_create_failed",
                    "key": key,
                    "error": str(error),
                },
            )
            return "failed"
        _record_created(connection, row, invoice)
    logger.info(
        "monthly invoice created",
        extra={"action": f"invoice_{outcome}", "key": key, "stripe_id": invoice["id"]},
    )
    return outcome


def _collect(engine: Engine, stripe: StripeGateway, invoice_id: int) -> str | None:
    """OPEN, never paid by us -> PAID, or OPEN with the decline recorded. Paying is
    safe to repeat: Stripe pays an invoice at most once, and a paid one is only
    recorded, not paid again."""
    with engine.begin() as connection:
        row = connection.execute(
            LOCK_INVOICE, {"id": invoice_id, "status": "OPEN"}
        ).first()
        if row is None:
            return None
        attempted, error = False, None
        try:
            invoice = stripe.invoice(row.stripe_invoice_id)
            if invoice.get("status") in ("draft", "open"):
                attempted = True
                invoice = stripe.pay_invoice(
                    row.stripe_invoice_id, f"{row.idempotency_key}:pay"
                )
        except CardDeclinedError as declined:
            invoice, error = None, str(declined)
        except ClientError as failure:
            connection.execute(RECORD_ERROR, {"id": row.id, "error": str(failure)})
            return "failed"
        if invoice is not None and invoice.get("status") != "paid":
            error = error or "payment did not succeed (invoice still open)"
        return _record_payment(connection, row, invoice, attempted, error)


@job("monthly_invoice")
def monthly_invoice(ctx: RunContext) -> JobResult:
    """On the 1st, bill last WITA month: one Stripe invoice per venue whose
    subscription is active or past_due (and existed before the month ended), then
    collect it once on the saved card.

    One ``monthly_invoices`` row per (venue, month), ever: it is recorded (PENDING,
    with its key) before Stripe is called; a re-run resumes PENDING rows by first
    looking for the invoice a crashed attempt made, and OPEN rows by reading the
    invoice's status before paying. A declined invoice stays OPEN with the error
    (Stripe's own dunning retries it; reconcile_subscription_state mirrors the
    subscription going past_due); this job pays each invoice at most once.
    The invoice includes the venue's pending invoice items (metered API usage).
    """
    stripe = StripeGateway.from_settings(ctx.settings)
    period = timeutil.month(ctx.tick, timeutil.zone(ctx.settings.business_timezone), -1)
    planned = _plan(ctx, period)
    counts: Counter[str] = Counter()
    params = {"month": period.label, "limit": ctx.settings.job_chunk_size}
    for invoice_id in _ids(ctx.engine, UNSETTLED, params):
        created = _create(ctx.engine, stripe, invoice_id)
        if created:
            counts[created] += 1
        collected = _collect(ctx.engine, stripe, invoice_id)
        if collected:
            counts[collected] += 1
    result = {
        "month": period.label,
        "planned": planned,
        **{k: counts[k] for k in ("created", "recovered", "paid", "payment_failed")},
        "failed": counts["failed"],
    }
    logger.info("monthly invoices", extra={"action": "monthly_invoice", **result})
    return result
