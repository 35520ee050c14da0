"""Settling one monthly invoice on Stripe: creating it (PENDING -> OPEN) and
collecting it (OPEN -> PAID), and retrying both on the fee schedule until it is
paid or given up (UNCOLLECTIBLE plus a dead letter).

monthly_invoice makes the first try on the 1st; retry_pending_fees (every 30
minutes) makes the later ones, for any month, when ``next_attempt_at`` has passed.
Each try runs in one transaction holding the invoice's row lock (``FOR UPDATE SKIP
LOCKED``) across the Stripe calls and the recording, so two jobs never work on one
invoice; a crash rolls the recording back, and the next try looks in Stripe first
(the invoice by its key, its status before paying), so nothing is made or paid twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from agnt_jobs import logs, timeutil
from agnt_jobs.clients.errors import ClientError, PermanentError, RetryableError
from agnt_jobs.clients.stripe_client import CardDeclinedError, StripeGateway
from agnt_jobs.delivery import deadletters
from agnt_jobs.delivery.backoff import backoff_seconds
from agnt_jobs.jobs import duplicate_payments, ledger
from agnt_jobs.jobs.lost_answers import LostAnswers
from agnt_jobs.settings import Settings
from agnt_jobs.walk import due_ids

logger = logging.getLogger(__name__)

DEAD_LETTER_SOURCE = "monthly_invoice"

# Stripe invoice status -> ours.
INVOICE_STATUS = {
    "draft": "OPEN",
    "open": "OPEN",
    "paid": "PAID",
    "void": "VOID",
    "uncollectible": "UNCOLLECTIBLE",
}

# first_pass: monthly_invoice's own run on the 1st may take an invoice it planned
# whatever its next_attempt_at, but never one already declined (that waits for
# its backoff, so re-running the monthly job does not charge a card again).
LOCK_INVOICE = sa.text(
    """
    SELECT * FROM monthly_invoices
    WHERE id = :id AND status = :status
      AND ((:first_pass AND payment_attempts = 0) OR next_attempt_at <= :now)
    FOR UPDATE SKIP LOCKED
    """
)

RECORD_CREATED = sa.text(
    """
    UPDATE monthly_invoices
    SET stripe_invoice_id = :stripe_id, status = :status, amount_due = :amount_due,
        currency = :currency, last_error = NULL, next_attempt_at = :now,
        updated_at = now()
    WHERE id = :id
    """
)

RECORD_PAYMENT = sa.text(
    """
    UPDATE monthly_invoices
    SET status = :status, amount_paid = :amount_paid, payment_attempts = :attempts,
        last_error = :error, next_attempt_at = :next_attempt_at,
        paid_at = CASE WHEN :status = 'PAID' THEN now() END, updated_at = now()
    WHERE id = :id
    """
)

RECORD_FAILURE = sa.text(
    """
    UPDATE monthly_invoices
    SET status = :status, last_error = :error, next_attempt_at = :next_attempt_at,
        updated_at = now()
    WHERE id = :id
    """
)

DUE_INVOICES = sa.text(
    """
    SELECT id, next_attempt_at AS due_at FROM monthly_invoices
    WHERE status IN ('PENDING', 'OPEN') AND next_attempt_at <= :now
      AND (next_attempt_at, id) > (:after_at, :after_id)
    ORDER BY next_attempt_at, id
    LIMIT :limit
    """
)


@dataclass(frozen=True)
class Attempt:
    """Where and when one settlement try runs."""

    engine: Engine
    stripe: StripeGateway
    settings: Settings
    now: datetime
    first_pass: bool
    lost: LostAnswers

    def retry_at(self, failures: int) -> datetime:
        return self.now + timedelta(
            seconds=backoff_seconds(
                max(failures, 1),
                self.settings.fee_backoff_base_seconds,
                self.settings.fee_backoff_max_seconds,
            )
        )

    def lock(self, connection: Connection, invoice_id: int, status: str) -> Any:
        return connection.execute(
            LOCK_INVOICE,
            {
                "id": invoice_id,
                "status": status,
                "now": self.now,
                "first_pass": self.first_pass,
            },
        ).first()


def _give_up(
    connection: Connection, row: Row[Any], error_class: str, error: str, attempts: int
) -> None:
    deadletters.record(
        connection,
        [
            deadletters.DeadLetter(
                source=DEAD_LETTER_SOURCE,
                source_id=row.idempotency_key,
                error_class=error_class,
                error=error,
                attempts=attempts,
                payload={
                    "venue_id": row.venue_id,
                    "month": row.month,
                    "stripe_customer_id": row.stripe_customer_id,
                    "stripe_invoice_id": row.stripe_invoice_id,
                    "amount_due": row.amount_due,
                },
            )
        ],
    )


def _ledger_entry(
    row: Row[Any], kind: str, amount: int, currency: str, ref: str
) -> ledger.Entry:
    return ledger.Entry(
        idempotency_key=f"{row.idempotency_key}:{kind}",
        entry_type=kind,
        amount=amount,
        currency=currency,
        venue_id=row.venue_id,
        stripe_customer_id=row.stripe_customer_id,
        invoice_id=row.id,
        stripe_reference=ref,
        description=row.description,
    )


def _record_created(
    connection: Connection, row: Row[Any], invoice: dict[str, Any], now: datetime
) -> None:
    amount_due = int(invoice.get("amount_due") or 0)
    currency = (invoice.get("currency") or row.currency).upper()
    status = INVOICE_STATUS.get(invoice.get("status") or "draft", "OPEN")
    connection.execute(
        RECORD_CREATED,
        {
            "id": row.id,
            "stripe_id": invoice["id"],
            # A paid invoice is recorded PAID by collect(), with its ledger entry.
            "status": "OPEN" if status == "PAID" else status,
            "amount_due": amount_due,
            "currency": currency,
            "now": now,
        },
    )
    if amount_due > 0:
        entry = _ledger_entry(row, "charge", amount_due, currency, invoice["id"])
        ledger.append(connection, [entry])


def _record_payment(
    connection: Connection,
    attempt: Attempt,
    row: Row[Any],
    invoice: dict[str, Any] | None,
    attempts: int,
    error: str | None,
) -> str:
    """Write what a payment try established; returns the count it goes under."""
    status = INVOICE_STATUS.get((invoice or {}).get("status") or "open", "OPEN")
    if status == "OPEN":
        error = error or "payment did not succeed (invoice still open)"
        if attempts >= attempt.settings.fee_max_attempts:
            status = "UNCOLLECTIBLE"
            _give_up(connection, row, "card_declined", error, attempts)
    amount_paid = int((invoice or {}).get("amount_paid") or 0)
    connection.execute(
        RECORD_PAYMENT,
        {
            "id": row.id,
            "status": status,
            "amount_paid": amount_paid if invoice else None,
            "attempts": attempts,
            "error": None if status == "PAID" else error,
            "next_attempt_at": attempt.retry_at(attempts) if status == "OPEN" else None,
        },
    )
    if status == "PAID" and amount_paid:
        entry = _ledger_entry(
            row, "payment", amount_paid, row.currency, row.stripe_invoice_id
        )
        ledger.append(connection, [entry])
    if status == "PAID":
        return "paid"
    return "uncollectible" if status == "UNCOLLECTIBLE" else "payment_failed"


def create(attempt: Attempt, invoice_id: int) -> str | None:
    """PENDING -> OPEN: find the invoice a crashed try made, else create it. Stripe
    unavailable is retried after the first backoff step; a request Stripe refuses
    (unknown customer) is given up at once."""
    with attempt.engine.begin() as connection:
        row = attempt.lock(connection, invoice_id, "PENDING")
        if row is None:
            return None
        key = row.idempotency_key
        try:
            found = attempt.stripe.find_invoices(row.stripe_customer_id, key)
            invoice, extras = duplicate_payments.keep_earliest(found)
            outcome = "recovered" if invoice else "created"
            if invoice is None:
                invoice = _create_or_find(attempt, row)
        except ClientError as error:
            refused = isinstance(error, PermanentError)
            connection.execute(
                RECORD_FAILURE,
                {
                    "id": row.id,
                    "status": "UNCOLLECTIBLE" if refused else "PENDING",
                    "error": str(error),
                    "next_attempt_at": None if refused else attempt.retry_at(1),
                },
            )
            if refused:
                _give_up(connection, row, "permanent", str(error), 1)
            logger.warning(
                "monthly invoice not created",
                extra=logs.event("invoice_create_failed", key=key, error=str(error)),
            )
            return "uncollectible" if refused else "failed"
        _record_created(connection, row, invoice, attempt.now)
        if extras:
            _record_extras(connection, attempt, row, extras)
    logger.info(
        "monthly invoice created",
        extra=logs.event(f"invoice_{outcome}", key=key, stripe_id=invoice["id"]),
    )
    return outcome


def _record_extras(
    connection: Connection,
    attempt: Attempt,
    row: Row[Any],
    extras: list[dict[str, Any]],
) -> None:
    """Invoices made under this row's key beyond the one kept: to make right."""
    duplicate_payments.record(
        connection,
        duplicate_payments.Owner(
            kind="invoice",
            job="monthly_invoice",
            key=row.idempotency_key,
            stripe_customer_id=row.stripe_customer_id,
            currency=row.currency,
            venue_id=row.venue_id,
            invoice_id=row.id,
        ),
        [duplicate_payments.extra_invoice(extra) for extra in extras],
        attempt.settings.stripe_duplicate_action,
        timeutil.day(
            attempt.now, timeutil.zone(attempt.settings.business_timezone)
        ).start,
    )


def _create_or_find(attempt: Attempt, row: Row[Any]) -> dict[str, Any]:
    """Create the invoice; if the answer is lost, find what the request made
    (``lost_answers``). Raises the write's error if Stripe answered that there is
    none, or never answered the lookup: the row stays PENDING, due again."""
    key = row.idempotency_key
    try:
        return attempt.stripe.create_invoice(
            row.stripe_customer_id,
            row.stripe_subscription_id,
            row.description,
            key,
            {"agnt_venue_id": str(row.venue_id), "agnt_month": row.month},
        )
    except RetryableError:
        _, invoice = attempt.lost.look(
            lambda: attempt.stripe.find_invoice(row.stripe_customer_id, key), key
        )
        if invoice is None:
            raise
        return invoice


def _pay_or_read(attempt: Attempt, row: Row[Any], attempts: int) -> dict[str, Any]:
    """Pay the invoice under this try's key; if the answer is lost, read what the
    request did to it (paid, or still open: then the try did not happen)."""
    try:
        return attempt.stripe.pay_invoice(
            row.stripe_invoice_id, f"{row.idempotency_key}:pay:{attempts}"
        )
    except RetryableError:
        _, invoice = attempt.lost.look(
            lambda: attempt.stripe.invoice(row.stripe_invoice_id),
            f"{row.idempotency_key}:pay:{attempts}",
        )
        if invoice is None or invoice.get("status") in ("draft", "open"):
            raise
        return invoice


def collect(attempt: Attempt, invoice_id: int) -> str | None:
    """OPEN -> PAID, or a decline recorded with the next try after the fee backoff;
    the ``fee_max_attempts``-th decline makes it UNCOLLECTIBLE with a dead letter.
    Paying is safe to repeat: the invoice's status is read first, and a paid one is
    only recorded; each try has its own idempotency key."""
    with attempt.engine.begin() as connection:
        row = attempt.lock(connection, invoice_id, "OPEN")
        if row is None:
            return None
        attempts, error = row.payment_attempts, None
        try:
            invoice = attempt.stripe.invoice(row.stripe_invoice_id)
            if invoice.get("status") in ("draft", "open"):
                attempts += 1  # a decline (raised) counts as this attempt
                invoice = _pay_or_read(attempt, row, attempts)
        except CardDeclinedError as declined:
            invoice, error = None, str(declined)
        except PermanentError as refused:
            # Stripe refuses to pay it at all (a voided or deleted invoice): trying
            # again cannot help; a person must look.
            connection.execute(
                RECORD_FAILURE,
                {
                    "id": row.id,
                    "status": "UNCOLLECTIBLE",
                    "error": str(refused),
                    "next_attempt_at": None,
                },
            )
            _give_up(connection, row, "permanent", str(refused), attempts)
            return "uncollectible"
        except ClientError as failure:
            # Stripe unavailable: not the card's fault, so not an attempt.
            connection.execute(
                RECORD_FAILURE,
                {
                    "id": row.id,
                    "status": "OPEN",
                    "error": str(failure),
                    "next_attempt_at": attempt.retry_at(1),
                },
            )
            return "failed"
        return _record_payment(connection, attempt, row, invoice, attempts, error)


def settle(attempt: Attempt, invoice_id: int) -> list[str]:
    """Create the invoice if it is not yet, then collect it: the outcomes."""
    outcomes = [create(attempt, invoice_id), collect(attempt, invoice_id)]
    return [outcome for outcome in outcomes if outcome]


def due_invoice_ids(engine: Engine, now: datetime, limit: int) -> Iterator[int]:
    """Ids of the PENDING and OPEN invoices due for another try, of any month."""
    return due_ids(engine, DUE_INVOICES, now, limit)
