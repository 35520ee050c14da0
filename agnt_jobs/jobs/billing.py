"""The monthly venue invoice on Stripe.

Money safety, here as in ``fees.py`` and ``api_keys.py``: the intended Stripe write is
committed first (a row with a deterministic key), then each row is handled in its own
transaction that holds the row lock across the Stripe call and the recording of its
result (``invoice_settlement``). A crash rolls the recording back and releases the
lock; the next try looks for the object the crashed attempt made (by the key in its
metadata) before writing again. Two copies of a job never work on one row
(``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs import logs, timeutil
from agnt_jobs.checkpoint import checkpoint
from agnt_jobs.clients.stripe_client import StripeGateway
from agnt_jobs.jobs import duplicate_payments
from agnt_jobs.jobs import invoice_settlement as settlement
from agnt_jobs.jobs.lost_answers import LostAnswers
from agnt_jobs.models.billing import BILLABLE_SUBSCRIPTION_STATUSES
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job

logger = logging.getLogger(__name__)

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
            stripe_subscription_id, idempotency_key, description, currency,
            next_attempt_at)
        SELECT venue_id, :month, :period_start, :period_end, stripe_customer_id,
               stripe_subscription_id, 'invoice:' || venue_id || ':' || :month,
               -- ends with stripe_client.ref_tag(key), which the lookup matches
               'AGNT venue subscription ' || :month || ' '
                   || '[invoice:' || venue_id || ':' || :month || ']',
               :currency,
               -- if this run dies before settling it, retry_pending_fees takes it
               :retry_at
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


def _ids(engine: Engine, query: sa.TextClause, params: dict[str, Any]) -> Iterator[int]:
    """Ids from ``query`` in keyset chunks (``:after``, ``:limit``), each chunk read
    in its own short transaction."""
    after = 0
    while True:
        checkpoint()
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
        checkpoint()
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
                    "retry_at": ctx.now
                    + timedelta(seconds=ctx.settings.fee_backoff_base_seconds),
                },
            ).one()
        if row.last_id is None:
            return planned
        planned += row.planned
        after = row.last_id


@job("monthly_invoice", needs=("stripe_api_key",))
def monthly_invoice(ctx: RunContext) -> JobResult:
    """On the 1st, bill last WITA month: one Stripe invoice per venue whose
    subscription is active or past_due (and existed before the month ended), then
    collect it on the saved card.

    One ``monthly_invoices`` row per (venue, month), ever: it is recorded (PENDING,
    with its key) before Stripe is called; a re-run resumes PENDING rows by first
    looking for the invoice a crashed attempt made, and OPEN rows by reading the
    invoice's status before paying. This run makes the first try of each invoice;
    a decline, or Stripe being down, is retried by retry_pending_fees on the fee
    backoff, and the ``fee_max_attempts``-th decline makes the invoice
    UNCOLLECTIBLE with a dead letter. Re-running this job never charges a declined
    card again before its backoff has passed. The invoice includes the venue's
    pending invoice items (metered API usage).
    """
    lost = LostAnswers(ctx.settings.stripe_reconcile_seconds)
    stripe = StripeGateway.from_settings(ctx.settings)
    attempt = settlement.Attempt(
        ctx.engine,
        stripe,
        ctx.settings,
        ctx.now,
        first_pass=True,
        lost=lost,
    )
    period = timeutil.month(ctx.tick, timeutil.zone(ctx.settings.business_timezone), -1)
    planned = _plan(ctx, period)
    counts: Counter[str] = Counter()
    params = {"month": period.label, "limit": ctx.settings.job_chunk_size}
    for invoice_id in _ids(ctx.engine, UNSETTLED, params):
        counts.update(settlement.settle(attempt, invoice_id))
    made_right = duplicate_payments.make_right_due(ctx, stripe, lost, ("invoice",))
    names = ("created", "recovered", "paid", "payment_failed", "uncollectible")
    result = {
        "month": period.label,
        "planned": planned,
        **{name: counts[name] for name in names},
        "failed": counts["failed"],
        **{
            f"duplicates_{n}": made_right[n]
            for n in duplicate_payments.DUPLICATE_OUTCOMES
        },
    }
    logger.info("monthly invoices", extra=logs.event("monthly_invoice", **result))
    return lost.settled("monthly_invoice", result)
