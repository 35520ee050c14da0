"""API-key jobs: billing metered usage to Stripe, and the daily reset of each key's
query counter (after a snapshot into the usage history).

Usage billing runs in three steps, each safe to crash in:

1. batch: per Stripe customer, one ``usage_batches`` row per cutoff (key
   ``usage:{customer}:{date}``), created in the same transaction that binds the
   customer's unbatched events before the cutoff to it and totals them. The batch is
   the intended Stripe write; its events never change afterwards.
2. bill: per PENDING batch, under its row lock, look for the invoice item a crashed
   attempt made (metadata ``agnt_ref``), else create it; record BILLED, the item id
   and a ``usage`` ledger entry.
3. mark: the events of BILLED batches get the batch's ``billed_at``.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs import logs, timeutil
from agnt_jobs.checkpoint import checkpoint
from agnt_jobs.clients.errors import ClientError, RetryableError
from agnt_jobs.clients.stripe_client import StripeGateway, ref_tag
from agnt_jobs.jobs import duplicate_payments, errorlog, ledger
from agnt_jobs.jobs.lost_answers import LostAnswers
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job

logger = logging.getLogger(__name__)

LOOKUP_MARGIN = timedelta(days=1)

CUSTOMERS = sa.text(
    """
    SELECT stripe_customer_id FROM api_keys
    WHERE stripe_customer_id > :after
    GROUP BY stripe_customer_id
    ORDER BY stripe_customer_id
    LIMIT :limit
    """
)

OPEN_BATCHES = sa.text(
    """
    INSERT INTO usage_batches (
        stripe_customer_id, cutoff, idempotency_key, unit_price, currency)
    SELECT k.stripe_customer_id, :cutoff,
           'usage:' || k.stripe_customer_id || ':' || :label, :unit_price, :currency
    FROM api_keys k
    WHERE k.stripe_customer_id = ANY(:customers)
      AND EXISTS (
          SELECT 1 FROM api_key_usage_events e
          WHERE e.api_key_id = k.id AND e.usage_batch_id IS NULL
            AND e.occurred_at < :cutoff)
    GROUP BY k.stripe_customer_id
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
    """
)

FILL_BATCHES = sa.text(
    """
    WITH bound AS (
        UPDATE api_key_usage_events e SET usage_batch_id = b.id
        FROM api_keys k, usage_batches b
        WHERE b.id = ANY(:batch_ids) AND k.stripe_customer_id = b.stripe_customer_id
          AND e.api_key_id = k.id AND e.usage_batch_id IS NULL
          AND e.occurred_at < :cutoff
        RETURNING e.usage_batch_id, e.quantity
    ), totals AS (
        SELECT usage_batch_id, count(*) AS events, sum(quantity) AS quantity
        FROM bound GROUP BY usage_batch_id
    )
    UPDATE usage_batches b
    SET event_count = t.events, quantity = t.quantity,
        amount = t.quantity * b.unit_price
    FROM totals t
    WHERE b.id = t.usage_batch_id
    RETURNING b.event_count
    """
)

PENDING_BATCHES = sa.text(
    """
    SELECT id FROM usage_batches
    WHERE status = 'PENDING' AND id > :after
    ORDER BY id
    LIMIT :limit
    """
)

LOCK_BATCH = sa.text(
    "SELECT * FROM usage_batches WHERE id = :id AND status = 'PENDING' "
    "FOR UPDATE SKIP LOCKED"
)

RECORD_BILLED = sa.text(
    """
    UPDATE usage_batches
    SET status = 'BILLED', stripe_invoice_item_id = :item_id, billed_at = now(),
        last_error = NULL
    WHERE id = :id
    """
)

RECORD_BATCH_ERROR = sa.text(
    "UPDATE usage_batches SET last_error = :error WHERE id = :id"
)

UNMARKED_BATCHES = sa.text(
    """
    SELECT b.id FROM usage_batches b
    WHERE b.status = 'BILLED' AND b.id IN (
        SELECT DISTINCT usage_batch_id FROM api_key_usage_events
        WHERE usage_batch_id IS NOT NULL AND billed_at IS NULL)
    ORDER BY b.id
    """
)

MARK_EVENTS = sa.text(
    """
    WITH chunk AS (
        SELECT id FROM api_key_usage_events
        WHERE usage_batch_id = :batch_id AND billed_at IS NULL
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE api_key_usage_events e
    SET billed_at = (SELECT billed_at FROM usage_batches WHERE id = :batch_id)
    FROM chunk
    WHERE e.id = chunk.id
    """
)


def _batch(ctx: RunContext, cutoff: datetime, label: str) -> tuple[int, int]:
    """Step 1: open and fill this cutoff's batches, a chunk of customers at a time.
    Returns (batches opened, events bound)."""
    opened, bound, after = 0, 0, ""
    while True:
        checkpoint()
        with ctx.engine.connect() as connection:
            customers = [
                row[0]
                for row in connection.execute(
                    CUSTOMERS, {"after": after, "limit": ctx.settings.job_chunk_size}
                )
            ]
        if not customers:
            return opened, bound
        with ctx.engine.begin() as connection:
            batch_ids = [
                row.id
                for row in connection.execute(
                    OPEN_BATCHES,
                    {
                        "customers": customers,
                        "cutoff": cutoff,
                        "label": label,
                        "unit_price": ctx.settings.api_usage_unit_price,
                        "currency": ctx.settings.billing_currency,
                    },
                )
            ]
            if batch_ids:
                filled = connection.execute(
                    FILL_BATCHES, {"batch_ids": batch_ids, "cutoff": cutoff}
                )
                bound += sum(row.event_count for row in filled)
        opened += len(batch_ids)
        after = customers[-1]


def _create_item_or_find(
    stripe: StripeGateway, lost: LostAnswers, batch: Any, tz: tzinfo
) -> dict[str, Any]:
    """Create the batch's invoice item; if the answer is lost, find what the
    request made (``lost_answers``), else raise the write's error (the batch stays
    PENDING, due again)."""
    key = batch.idempotency_key
    try:
        return stripe.create_invoice_item(
            batch.stripe_customer_id,
            batch.amount,
            batch.currency,
            f"AGNT API usage: {batch.quantity} queries before "
            f"{batch.cutoff.astimezone(tz):%Y-%m-%d} WITA {ref_tag(key)}",
            key,
            {
                "agnt_usage_batch_id": str(batch.id),
                "agnt_quantity": str(batch.quantity),
            },
        )
    except RetryableError:
        since = batch.created_at - LOOKUP_MARGIN
        _, item = lost.look(
            lambda: stripe.find_invoice_item(batch.stripe_customer_id, key, since), key
        )
        if item is None:
            raise
        return item


def _bill_one(
    ctx: RunContext, stripe: StripeGateway, lost: LostAnswers, batch_id: int
) -> str:
    """Step 2 for one batch: find-or-create its invoice item, record it."""
    with ctx.engine.begin() as connection:
        batch = connection.execute(LOCK_BATCH, {"id": batch_id}).first()
        if batch is None:
            return "skipped"
        key = batch.idempotency_key
        tz = timeutil.zone(ctx.settings.business_timezone)
        item: dict[str, Any] | None = None
        extras: list[dict[str, Any]] = []
        outcome = "free"
        if batch.amount > 0:
            try:
                since = batch.created_at - LOOKUP_MARGIN
                found = stripe.find_invoice_items(batch.stripe_customer_id, key, since)
                item, extras = duplicate_payments.keep_earliest(found)
                outcome = "recovered" if item else "billed"
                if item is None:
                    item = _create_item_or_find(stripe, lost, batch, tz)
            except ClientError as error:
                connection.execute(
                    RECORD_BATCH_ERROR, {"id": batch.id, "error": str(error)}
                )
                if not error.retryable:
                    errorlog.report(
                        connection,
                        "charge_unbilled_usage",
                        f"usage_batch:{batch.id}",
                        f"usage batch {batch.id} ({key}) not billed: {error}",
                        timeutil.day(ctx.now, tz).start,
                        {"usage_batch_id": batch.id, "amount": batch.amount},
                    )
                return "failed"
        _record_billed(connection, batch, item)
        if extras:
            duplicate_payments.record(
                connection,
                duplicate_payments.Owner(
                    kind="invoice_item",
                    job="charge_unbilled_usage",
                    key=key,
                    stripe_customer_id=batch.stripe_customer_id,
                    currency=batch.currency,
                    usage_batch_id=batch.id,
                ),
                [duplicate_payments.extra_invoice_item(extra) for extra in extras],
                ctx.settings.stripe_duplicate_action,
                timeutil.day(ctx.now, tz).start,
            )
    logger.info(
        "usage batch billed",
        extra=logs.event(f"usage_{outcome}", key=key, amount=batch.amount),
    )
    return outcome


def _record_billed(
    connection: sa.Connection, batch: Any, item: dict[str, Any] | None
) -> None:
    item_id = item["id"] if item else None
    connection.execute(RECORD_BILLED, {"id": batch.id, "item_id": item_id})
    if batch.amount > 0:
        ledger.append(
            connection,
            [
                ledger.Entry(
                    idempotency_key=f"{batch.idempotency_key}:usage",
                    entry_type="usage",
                    amount=batch.amount,
                    currency=batch.currency,
                    stripe_customer_id=batch.stripe_customer_id,
                    usage_batch_id=batch.id,
                    stripe_reference=item_id,
                    description=f"{batch.quantity} API queries",
                )
            ],
        )


def _bill(ctx: RunContext, stripe: StripeGateway, lost: LostAnswers) -> Counter[str]:
    """Step 2 for every PENDING batch, this cutoff's and any a crash left behind."""
    counts: Counter[str] = Counter()
    after = 0
    while True:
        checkpoint()
        with ctx.engine.connect() as connection:
            ids = [
                row[0]
                for row in connection.execute(
                    PENDING_BATCHES,
                    {"after": after, "limit": ctx.settings.job_chunk_size},
                )
            ]
        for batch_id in ids:
            counts[_bill_one(ctx, stripe, lost, batch_id)] += 1
        if len(ids) < ctx.settings.job_chunk_size:
            return counts
        after = ids[-1]


def _mark(engine: Engine, chunk: int) -> int:
    """Step 3: give the events of every BILLED batch their billed_at."""
    marked = 0
    with engine.connect() as connection:
        batch_ids = [row[0] for row in connection.execute(UNMARKED_BATCHES)]
    for batch_id in batch_ids:
        while True:
            checkpoint()
            with engine.begin() as connection:
                done = connection.execute(
                    MARK_EVENTS, {"batch_id": batch_id, "limit": chunk}
                ).rowcount
            marked += done
            if done < chunk:
                break
    return marked


@job("charge_unbilled_usage", needs=("stripe_api_key",))
def charge_unbilled_usage(ctx: RunContext) -> JobResult:
    """Bill metered API usage: every unbilled event before the cutoff (the start of
    the tick's WITA day) goes into one batch per Stripe customer, and each batch
    becomes one Stripe invoice item (``quantity x api_usage_unit_price``, idempotency
    key ``usage:{customer}:{date}``), which Stripe adds to the customer's next
    invoice. Exactly the batch's events are marked billed.

    A crash between Stripe and our commit leaves the batch PENDING with its events
    bound to it: the re-run finds the item by its key and records it, so usage is
    neither lost nor billed twice. Events that arrive late (before a cutoff already
    batched) go into the next cutoff's batch. Keys without a Stripe customer are
    free and never billed. Stripe unavailable: the batch stays PENDING for the next
    run; a refusal (unknown customer) is also reported to ``error_log``.
    """
    stripe = StripeGateway.from_settings(ctx.settings)
    today = timeutil.day(ctx.tick, timeutil.zone(ctx.settings.business_timezone))
    chunk = ctx.settings.job_chunk_size
    marked = _mark(ctx.engine, chunk)  # events of batches a crash left unmarked
    opened, bound = _batch(ctx, today.start, today.label)
    lost = LostAnswers(ctx.settings.stripe_reconcile_seconds)
    counts = _bill(ctx, stripe, lost)
    marked += _mark(ctx.engine, chunk)
    made_right = duplicate_payments.make_right_due(ctx, stripe, lost, ("invoice_item",))
    result = {
        "cutoff": today.start.isoformat(),
        "batches": opened,
        "events": bound,
        **{n: counts[n] for n in ("billed", "recovered", "free", "failed")},
        "events_marked": marked,
        **{
            f"duplicates_{n}": made_right[n]
            for n in duplicate_payments.DUPLICATE_OUTCOMES
        },
    }
    logger.info("usage billed", extra=logs.event("charge_unbilled_usage", **result))
    return lost.settled("charge_unbilled_usage", result)


# --- reset_api_key_queries_today ----------------------------------------------------

RESET_CHUNK = sa.text(
    """
    WITH chunk AS (
        SELECT id, queries_today FROM api_keys
        WHERE id > :after AND (last_reset_on IS NULL OR last_reset_on < :reset_on)
        ORDER BY id
        LIMIT :limit
        FOR UPDATE
    ), history AS (
        INSERT INTO api_key_daily_usage (api_key_id, usage_date, queries)
        SELECT id, :usage_date, queries_today FROM chunk WHERE queries_today > 0
        ON CONFLICT (api_key_id, usage_date)
        DO UPDATE SET queries = api_key_daily_usage.queries + EXCLUDED.queries
        RETURNING api_key_id
    ), reset AS (
        UPDATE api_keys SET queries_today = 0, last_reset_on = :reset_on
        -- an array of the chunk's ids: the planner then looks each up by primary
        -- key instead of hashing the whole table
        WHERE id = ANY(ARRAY(SELECT id FROM chunk))
        RETURNING id
    )
    SELECT (SELECT max(id) FROM chunk) AS last_id,
           (SELECT count(*) FROM history) AS snapshots,
           (SELECT count(*) FROM reset) AS reset
    """
)


@job("reset_api_key_queries_today")
def reset_api_key_queries_today(ctx: RunContext) -> JobResult:
    """Snapshot each key's ``queries_today`` into ``api_key_daily_usage`` for the
    WITA date before the tick (the day the counter covered: it runs at 08:00 WITA =
    00:00 UTC), then reset the counter, in one statement per chunk under the keys'
    row locks, so a query counted meanwhile is never lost.

    Each key is reset once per WITA date (``last_reset_on``): a re-run the same day
    changes nothing, even for keys used since. Keys with a zero count get no history
    row. If a date's row already exists (e.g. a missed day caught up), the count is
    added to it rather than dropped.
    """
    tz = timeutil.zone(ctx.settings.business_timezone)
    reset_on = timeutil.local_date(ctx.tick, tz)
    usage_date = reset_on - timedelta(days=1)
    snapshots = reset = after = 0
    while True:
        checkpoint()
        with ctx.engine.begin() as connection:
            row = connection.execute(
                RESET_CHUNK,
                {
                    "after": after,
                    "limit": ctx.settings.job_chunk_size,
                    "reset_on": reset_on,
                    "usage_date": usage_date,
                },
            ).one()
        if row.last_id is None:
            break
        snapshots += row.snapshots
        reset += row.reset
        after = row.last_id
    result = {
        "usage_date": usage_date.isoformat(),
        "snapshots": snapshots,
        "reset": reset,
    }
    logger.info(
        "api key counters reset",
        extra=logs.event("reset_api_key_queries_today", **result),
    )
    return result
