"""check_price_watchers: fetch current prices of watched products, keep their
history, and tell a user once when a price falls to their target.

Each marketplace is a separate lane (its own thread, client, connection pool and
rate limit) that claims and checks only its own watchers, so a marketplace that is
down or slow delays its own watchers and nobody else's. Within a lane, after
``marketplace_breaker_failures`` retryable failures in a row the lane stops calling
that marketplace for this run; its unchecked watchers stay due for the next run.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from agnt_jobs import logs
from agnt_jobs.clients import marketplaces
from agnt_jobs.clients.channel import ChannelGateway
from agnt_jobs.clients.errors import ClientError
from agnt_jobs.clients.marketplaces import MarketplaceClient, Price
from agnt_jobs.delivery import lease, send_queue
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job

logger = logging.getLogger(__name__)

MESSAGE_KIND = "price_alert"

# Watchers not yet checked for this tick, of users not deleted; a claim is a lease,
# so a crashed run's watchers are checked again once it passes.
DUE = """
    FROM price_watchers w
    JOIN users u ON u.id = w.user_id AND u.deleted_at IS NULL
    WHERE w.status = 'ACTIVE' AND w.marketplace = :marketplace
      AND (w.last_checked_at IS NULL OR w.last_checked_at < :tick)
      AND (w.claimed_until IS NULL OR w.claimed_until < now())
"""

COUNT_DUE = sa.text(f"SELECT count(*) {DUE}")

CLAIM_DUE = sa.text(
    f"""
    WITH due AS (
        SELECT w.id {DUE}
        ORDER BY w.last_checked_at NULLS FIRST, w.id
        LIMIT :limit
        FOR UPDATE OF w SKIP LOCKED
    )
    UPDATE price_watchers w
    SET claimed_until = now() + make_interval(secs => :lease)
    FROM due WHERE w.id = due.id
    RETURNING w.id, w.product_ref, w.claimed_until
    """
)

# One observed price: update the watcher, add the history point, and, if this is
# the first time the price reached the target since the watcher was armed, mark it
# notified and queue the message, all in one transaction.
RECORD_PRICE = sa.text(
    """
    WITH armed AS (
        SELECT id, notified_at IS NULL AND :price <= target_price AS hit
        FROM price_watchers
        WHERE id = :id AND claimed_until = :lease
        FOR UPDATE
    ), watcher AS (
        UPDATE price_watchers w
        SET last_price = :price, currency = :currency,
            title = coalesce(w.title, :title), last_checked_at = :checked_at,
            last_error = NULL, claimed_until = NULL,
            notified_at = CASE WHEN armed.hit THEN :checked_at ELSE w.notified_at END
        FROM armed WHERE w.id = armed.id
        RETURNING w.id, w.user_id, w.title, w.target_price, w.notified_at, armed.hit
    ), point AS (
        INSERT INTO price_history (watcher_id, price, currency, tick)
        SELECT id, :price, :currency, :tick FROM watcher
        ON CONFLICT (watcher_id, tick) DO NOTHING
    ), message AS (
        INSERT INTO send_queue
            (idempotency_key, kind, user_id, channel, recipient, body)
        SELECT 'price_target:' || watcher.id || ':'
                   || extract(epoch FROM watcher.notified_at)::bigint,
               :kind, u.id, u.channel, u.channel_address,
               'Price drop: ' || coalesce(watcher.title, 'your watched product')
                   || ' is now ' || :currency || ' ' || :price_text
                   || ' (your target: ' || :currency || ' '
                   || trim_scale(watcher.target_price)::text || ').'
        FROM watcher JOIN users u ON u.id = watcher.user_id
        WHERE watcher.hit AND u.notifications_opt_in
          AND u.channel_address IS NOT NULL
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id
    )
    SELECT (SELECT count(*) FROM watcher) AS recorded,
           (SELECT bool_or(hit) FROM watcher) AS hit,
           (SELECT count(*) FROM message) AS queued
    """
)

RECORD_UNAVAILABLE = sa.text(
    """
    UPDATE price_watchers
    SET last_error = :error, last_checked_at = :checked_at, claimed_until = NULL
    WHERE id = :id AND claimed_until = :lease
    """
)

RELEASE = sa.text(
    """
    UPDATE price_watchers SET claimed_until = NULL, last_error = :error
    WHERE id = :id AND claimed_until = :lease
    """
)


def _record_one(
    connection: Connection,
    ctx: RunContext,
    row: Row[Any],
    outcome: Price | ClientError,
    checked_at: datetime,
) -> Counter[str]:
    claim = {"id": row.id, "lease": row.claimed_until}
    if isinstance(outcome, Price):
        result = connection.execute(
            RECORD_PRICE,
            {
                **claim,
                "price": outcome.amount,
                "price_text": f"{outcome.amount.normalize():f}",
                "currency": outcome.currency,
                "title": outcome.title,
                "checked_at": checked_at,
                "tick": ctx.tick,
                "kind": MESSAGE_KIND,
            },
        ).one()
        return Counter(
            checked=result.recorded,
            targets_hit=int(bool(result.hit)),
            notifications_queued=result.queued,
        )
    if not outcome.retryable:
        # The product is gone or unreadable: recorded as checked for this tick
        # (no point asking again), tried again at the next one.
        params = {**claim, "error": str(outcome), "checked_at": checked_at}
        return Counter(
            unavailable=connection.execute(RECORD_UNAVAILABLE, params).rowcount
        )
    error = (
        "skipped: marketplace failing"
        if isinstance(outcome, lease.NotSent)
        else str(outcome)
    )
    released = connection.execute(RELEASE, {**claim, "error": error}).rowcount
    return Counter(released=released)


def _record(
    ctx: RunContext,
    checked_at: datetime,
    connection: Connection,
    rows: Sequence[Row[Any]],
    outcomes: Sequence[Price | ClientError],
) -> Counter[str]:
    """Each outcome under the lease its row was claimed with; a watcher whose
    lease another run now holds is neither written nor counted."""
    totals: Counter[str] = Counter()
    for row, outcome in zip(rows, outcomes, strict=True):
        totals.update(_record_one(connection, ctx, row, outcome, checked_at))
    return totals


def _check_marketplace(ctx: RunContext, client: MarketplaceClient) -> Counter[str]:
    """One lane, a lease drain (``delivery.lease``): claim this marketplace's due
    watchers ``price_watcher_batch_size`` at a time, fetch with bounded
    concurrency, record each batch in one transaction under the claim's lease."""
    settings = ctx.settings
    breaker = lease.Breaker(settings.marketplace_breaker_failures)
    drain = lease.LeaseDrain(
        name=f"price_watchers:{client.name}",
        engine=ctx.engine,
        config=lease.LeaseConfig(
            batch_size=settings.price_watcher_batch,
            concurrency=settings.marketplace_concurrency,
            lease_seconds=settings.price_watcher_claim_seconds,
        ),
        claim_sql=CLAIM_DUE,
        claim_params={"marketplace": client.name, "tick": ctx.tick},
        send=lambda row: client.fetch_price(row.product_ref),
        record=functools.partial(_record, ctx, max(ctx.now, ctx.tick)),
        breaker=breaker,
    )
    totals = drain.run().counts
    if not breaker.open:
        # Failures that did not open the breaker are due again at a re-run.
        totals["deferred"] = totals["released"]
        return totals
    totals["marketplaces_failing"] = 1
    with ctx.engine.connect() as connection:
        totals["deferred"] = connection.execute(
            COUNT_DUE, {"marketplace": client.name, "tick": ctx.tick}
        ).scalar_one()
    logger.warning(
        "marketplace failing, its watchers wait for the next run",
        extra=logs.event(
            "marketplace_breaker_open",
            marketplace=client.name,
            deferred=totals["deferred"],
        ),
    )
    return totals


@job("check_price_watchers", needs=("channel_gateway_url",))
def check_price_watchers(ctx: RunContext) -> JobResult:
    """Check every ACTIVE watcher (of a user not deleted) once per tick.

    Each successful fetch updates the watcher, adds one ``price_history`` point per
    tick, and when the price is at or below ``target_price`` for the first time
    since the watcher was armed (``notified_at`` NULL), sets ``notified_at`` and
    queues one message (key ``price_target:<watcher>:<notified_at>``), delivered
    at the end of the run. The user is notified only with ``notifications_opt_in``
    and a channel address; the hit is recorded either way. A product that is gone
    counts as ``unavailable``; a marketplace failure leaves its watchers due
    (``deferred``: how many still wait for this tick) so a re-run or the next tick
    checks them.
    """
    with ChannelGateway.from_settings(ctx.settings) as gateway:
        clients = marketplaces.from_settings(ctx.settings)
        try:
            with ThreadPoolExecutor(max_workers=len(clients)) as lanes:
                futures = {
                    name: lanes.submit(_check_marketplace, ctx, client)
                    for name, client in clients.items()
                }
                per_marketplace = {name: f.result() for name, f in futures.items()}
        finally:
            for client in clients.values():
                client.close()
        delivered = send_queue.deliver_due(
            ctx.engine,
            ctx.settings,
            gateway,
            statuses=("PENDING",),
            kinds=[MESSAGE_KIND],
        )
    totals: Counter[str] = sum(per_marketplace.values(), Counter())
    names = (
        "checked",
        "targets_hit",
        "notifications_queued",
        "unavailable",
        "deferred",
        "marketplaces_failing",
    )
    result: JobResult = {name: totals.get(name, 0) for name in names}
    result["notifications_sent"] = delivered["sent"]
    result["by_marketplace"] = {
        name: counts.get("checked", 0) for name, counts in per_marketplace.items()
    }
    logger.info(
        "price watchers checked", extra=logs.event("price_watchers_checked", **result)
    )
    return result
