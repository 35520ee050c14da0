"""Platform fees charged to venues' saved cards: collecting the ones due, and
checking their statuses against the ledger.

A fee is charged with an off-session payment intent whose metadata names the fee and
the attempt (``agnt_fee_id``, ``agnt_attempt``). Each fee is handled in one
transaction holding its row lock across the Stripe calls and the recording; before
charging, the fee's payment intents are looked up in Stripe, so a charge whose result
a crash lost is recorded, never repeated.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from agnt_jobs import logs, timeutil
from agnt_jobs.clients.errors import ClientError, PermanentError, RetryableError
from agnt_jobs.clients.stripe_client import CardDeclinedError, StripeGateway
from agnt_jobs.delivery import deadletters
from agnt_jobs.delivery.backoff import backoff_seconds
from agnt_jobs.jobs import duplicate_payments, ledger
from agnt_jobs.jobs import invoice_settlement as settlement
from agnt_jobs.jobs.lost_answers import LostAnswers
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job
from agnt_jobs.walk import due_ids

logger = logging.getLogger(__name__)

DEAD_LETTER_SOURCE = "fee_collection"
# How far before a fee's creation its payment intents are looked for: clock skew
# between us and Stripe, with room to spare.
LOOKUP_MARGIN = timedelta(days=1)
# Payment intent states in which money may still move: wait, never charge again.
IN_FLIGHT = ("processing", "requires_capture")

DUE_FEES = sa.text(
    """
    SELECT id, next_retry_at AS due_at FROM fee_collections
    WHERE status IN ('PENDING', 'FAILED') AND next_retry_at <= :now
      AND (next_retry_at, id) > (:after_at, :after_id)
    ORDER BY next_retry_at, id
    LIMIT :limit
    """
)

LOCK_DUE_FEE = sa.text(
    """
    SELECT * FROM fee_collections
    WHERE id = :id AND status IN ('PENDING', 'FAILED') AND next_retry_at <= :now
    FOR UPDATE SKIP LOCKED
    """
)

UPDATE_FEE = sa.text(
    """
    UPDATE fee_collections
    SET status = :status, attempts = :attempts, next_retry_at = :next_retry_at,
        stripe_payment_intent_id = coalesce(:intent, stripe_payment_intent_id),
        last_error = :error, updated_at = now(),
        paid_at = CASE WHEN :status = 'PAID' THEN now() ELSE paid_at END
    WHERE id = :id
    """
)


@dataclass(frozen=True)
class Outcome:
    """What one collection attempt (or the lookup before it) established."""

    kind: str  # paid, declined, in_flight, unavailable, refused
    attempts: int
    intent: dict[str, Any] | None = None
    error: str | None = None
    recovered: bool = False  # learnt from Stripe, not from a charge made now
    # Succeeded payment intents of this fee beyond the first: a double charge,
    # refunded (or reported) by duplicate_payments.
    extra_charges: tuple[dict[str, Any], ...] = ()


def _attempt_number(intent: dict[str, Any]) -> int:
    try:
        return int((intent.get("metadata") or {}).get("agnt_attempt") or 0)
    except ValueError:
        return 0


def _from_stripe(fee: Row[Any], previous: list[dict[str, Any]]) -> Outcome | None:
    """What the fee's payment intents in Stripe establish, or None: no attempt
    beyond those recorded was made, so the next one may be."""
    tried = max([fee.attempts, *(_attempt_number(i) for i in previous)])
    # The first payment made is the fee's; any later one is the duplicate.
    succeeded = sorted(
        (i for i in previous if i.get("status") == "succeeded"),
        key=lambda i: (i.get("created") or 0, _attempt_number(i), i["id"]),
    )
    if succeeded:
        extra = tuple(succeeded[1:])
        return Outcome("paid", tried, succeeded[0], recovered=True, extra_charges=extra)
    for intent in previous:
        if intent.get("status") in IN_FLIGHT:
            return Outcome("in_flight", tried, intent, recovered=True)
    if tried > fee.attempts:
        # A declined attempt whose result a crash lost: record it, and let the
        # backoff decide when to try again.
        latest = max(previous, key=_attempt_number)
        error = (latest.get("last_payment_error") or {}).get("message") or "declined"
        return Outcome("declined", tried, latest, error, recovered=True)
    return None


def _look_then_charge(
    stripe: StripeGateway, fee: Row[Any], lost: LostAnswers
) -> Outcome:
    def lookup() -> list[dict[str, Any]]:
        return stripe.find_payment_intents(
            fee.stripe_customer_id,
            "agnt_fee_id",
            str(fee.id),
            fee.created_at - LOOKUP_MARGIN,
        )

    found = _from_stripe(fee, lookup())
    if found is not None:
        return found
    # The attempt's number, hence its key, is fixed by what is recorded: a try
    # repeated after a crash or a lost answer reuses it, a try after a decline
    # (recorded, or found above) gets the next one.
    attempt = fee.attempts + 1
    method = stripe.default_payment_method(fee.stripe_customer_id)
    if method is None:
        return Outcome("declined", attempt, None, "no default payment method")
    try:
        intent = stripe.charge_off_session(
            fee.stripe_customer_id,
            method,
            fee.amount,
            fee.currency,
            f"fee:{fee.id}:attempt:{attempt}",
            {
                "agnt_fee_id": str(fee.id),
                "agnt_attempt": str(attempt),
                "agnt_venue_id": str(fee.venue_id),
            },
        )
    except CardDeclinedError as declined:
        return Outcome("declined", attempt, None, str(declined))
    except RetryableError as error:
        answered, previous = lost.look(lookup, f"fee {fee.id}")
        found = _from_stripe(fee, previous or []) if answered else None
        return found or Outcome("unavailable", fee.attempts, None, str(error))
    status = intent.get("status")
    if status == "succeeded":
        return Outcome("paid", attempt, intent)
    if status in IN_FLIGHT:
        return Outcome("in_flight", attempt, intent)
    # requires_action (the bank wants the customer present) or a failed intent.
    return Outcome("declined", attempt, intent, f"payment intent {status}")


def _record(
    connection: Connection, ctx: RunContext, fee: Row[Any], outcome: Outcome
) -> str:
    """Write what the attempt established; returns the count it goes under."""
    settings = ctx.settings
    intent_id = (outcome.intent or {}).get("id")
    status, next_retry_at, verdict = fee.status, fee.next_retry_at, outcome.kind
    if outcome.kind == "paid":
        status = "PAID"
        ledger.append(
            connection,
            [
                ledger.Entry(
                    idempotency_key=f"fee:{fee.id}:payment",
                    entry_type="payment",
                    amount=int((outcome.intent or {}).get("amount") or fee.amount),
                    currency=fee.currency,
                    venue_id=fee.venue_id,
                    stripe_customer_id=fee.stripe_customer_id,
                    fee_id=fee.id,
                    stripe_reference=intent_id,
                    description=fee.description,
                )
            ],
        )
    elif outcome.kind == "declined" and outcome.attempts < settings.fee_max_attempts:
        status = "FAILED"
        next_retry_at = ctx.now + timedelta(
            seconds=backoff_seconds(
                outcome.attempts,
                settings.fee_backoff_base_seconds,
                settings.fee_backoff_max_seconds,
            )
        )
    elif outcome.kind in ("declined", "refused"):
        status, verdict = "UNCOLLECTIBLE", "uncollectible"
        deadletters.record(
            connection,
            [
                deadletters.DeadLetter(
                    source=DEAD_LETTER_SOURCE,
                    source_id=str(fee.id),
                    error_class="card_declined"
                    if outcome.kind == "declined"
                    else "permanent",
                    error=outcome.error,
                    attempts=outcome.attempts,
                    payload={
                        "venue_id": fee.venue_id,
                        "amount": fee.amount,
                        "currency": fee.currency,
                        "stripe_customer_id": fee.stripe_customer_id,
                        "payment_intent": intent_id,
                    },
                )
            ],
        )
    elif outcome.kind == "in_flight":
        # Look again after the first backoff step; the lookup will find it.
        next_retry_at = ctx.now + timedelta(seconds=settings.fee_backoff_base_seconds)
    if outcome.extra_charges:
        duplicate_payments.record(
            connection,
            duplicate_payments.Owner(
                kind="payment",
                job="retry_pending_fees",
                key=f"fee:{fee.id}",
                stripe_customer_id=fee.stripe_customer_id,
                currency=fee.currency,
                venue_id=fee.venue_id,
                fee_id=fee.id,
            ),
            [
                duplicate_payments.Extra(
                    intent["id"],
                    int(intent.get("amount") or fee.amount),
                    "refund",
                    intent["id"],
                )
                for intent in outcome.extra_charges
            ],
            settings.stripe_duplicate_action,
            timeutil.day(ctx.now, timeutil.zone(settings.business_timezone)).start,
        )
    connection.execute(
        UPDATE_FEE,
        {
            "id": fee.id,
            "status": status,
            "attempts": outcome.attempts,
            "next_retry_at": next_retry_at,
            "intent": intent_id,
            "error": outcome.error,
        },
    )
    logger.info(
        "fee collection attempt recorded",
        extra=logs.event(
            f"fee_{verdict}",
            fee_id=fee.id,
            attempts=outcome.attempts,
            recovered=outcome.recovered,
            payment_intent=intent_id,
        ),
    )
    return "recovered" if outcome.recovered and verdict == "paid" else verdict


def _collect(
    ctx: RunContext, stripe: StripeGateway, lost: LostAnswers, fee_id: int
) -> str:
    with ctx.engine.begin() as connection:
        fee = connection.execute(LOCK_DUE_FEE, {"id": fee_id, "now": ctx.now}).first()
        if fee is None:
            return "skipped"  # another run holds it, or it is no longer due
        try:
            outcome = _look_then_charge(stripe, fee, lost)
        except PermanentError as error:
            outcome = Outcome("refused", fee.attempts, None, str(error))
        except ClientError as error:
            # Stripe unavailable: not the card's fault, so not an attempt; the
            # fee stays due and the next run looks (and finds) before charging.
            outcome = Outcome("unavailable", fee.attempts, None, str(error))
        return _record(connection, ctx, fee, outcome)


def _retry_invoices(
    ctx: RunContext, stripe: StripeGateway, lost: LostAnswers, counts: Counter[str]
) -> None:
    """Monthly invoices due for another try (any month): see invoice_settlement."""
    attempt = settlement.Attempt(
        ctx.engine, stripe, ctx.settings, ctx.now, first_pass=False, lost=lost
    )
    chunk = ctx.settings.job_chunk_size
    for invoice_id in settlement.due_invoice_ids(ctx.engine, ctx.now, chunk):
        counts.update(f"invoice_{o}" for o in settlement.settle(attempt, invoice_id))


@job("retry_pending_fees", needs=("stripe_api_key",))
def retry_pending_fees(ctx: RunContext) -> JobResult:
    """Collect fees due for (re)try: PENDING or FAILED with ``next_retry_at`` passed.

    Success writes a ``payment`` ledger entry and marks the fee PAID, in one
    transaction. A decline is FAILED with the next try after the fee backoff
    (1h, 2h, 4h... up to a day); the ``fee_max_attempts``-th decline, or a request
    Stripe refuses outright (unknown customer), makes the fee UNCOLLECTIBLE with a
    dead letter. Stripe unavailable is not an attempt. A venue with no saved card
    counts as a decline (it may add one before the next try).

    Monthly subscription invoices are fees too: those whose creation or payment
    failed on the 1st are retried here on the same schedule (``invoices_*`` counts).
    """
    stripe = StripeGateway.from_settings(ctx.settings)
    lost = LostAnswers(ctx.settings.stripe_reconcile_seconds)
    counts: Counter[str] = Counter()
    _retry_invoices(ctx, stripe, lost, counts)
    for fee_id in due_ids(ctx.engine, DUE_FEES, ctx.now, ctx.settings.job_chunk_size):
        counts[_collect(ctx, stripe, lost, fee_id)] += 1
    made_right = duplicate_payments.make_right_due(ctx, stripe, lost)
    names = ("paid", "recovered", "declined", "uncollectible", "in_flight")
    result = {n: counts[n] for n in (*names, "unavailable", "skipped")}
    result |= {
        f"duplicates_{n}": made_right[n] for n in duplicate_payments.DUPLICATE_OUTCOMES
    }
    invoice_names = ("created", "recovered", "paid", "payment_failed")
    result |= {
        f"invoices_{n}": counts[f"invoice_{n}"]
        for n in (*invoice_names, "uncollectible", "failed")
    }
    logger.info("fees collected", extra=logs.event("retry_pending_fees", **result))
    return lost.settled("retry_pending_fees", result)
