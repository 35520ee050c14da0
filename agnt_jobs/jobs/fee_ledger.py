"""Fee statuses checked against the ledger, which is the truth for money: what the
ledger proves is corrected, what it cannot settle is reported, never guessed."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from agnt_jobs import logs, timeutil
from agnt_jobs.checkpoint import checkpoint
from agnt_jobs.jobs import errorlog
from agnt_jobs.jobs.fees import DEAD_LETTER_SOURCE
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job

logger = logging.getLogger(__name__)

# The run whose tick falls this soon after WITA midnight checks every fee, not
# only the recently changed ones (the schedule is half-hourly: one run a day).
FULL_PASS_WITHIN = timedelta(minutes=30)

CANDIDATES = sa.text(
    """
    SELECT id FROM fee_collections WHERE updated_at >= :since AND id > :after
    UNION
    SELECT fee_id FROM ledger_entries
    WHERE created_at >= :since AND fee_id IS NOT NULL AND fee_id > :after
    ORDER BY 1
    LIMIT :limit
    """
)

FEES_WITH_LEDGER = sa.text(
    """
    WITH fees AS (
        SELECT id, status, amount, venue_id FROM fee_collections
        WHERE id = ANY(:ids)
        FOR UPDATE SKIP LOCKED
    )
    SELECT fees.id, fees.status, fees.amount, fees.venue_id,
           coalesce(sum(l.amount) FILTER (WHERE l.entry_type = 'payment'), 0) AS paid,
           coalesce(sum(l.amount) FILTER (WHERE l.entry_type = 'refund'), 0)
               AS refunded
    FROM fees LEFT JOIN ledger_entries l ON l.fee_id = fees.id
    GROUP BY fees.id, fees.status, fees.amount, fees.venue_id
    """
)

SET_FEE_STATUS = sa.text(
    """
    UPDATE fee_collections
    SET status = :status, updated_at = now(), last_error = NULL,
        paid_at = coalesce(paid_at, now())
    WHERE id = :id
    """
)

RESOLVE_DEAD_LETTER = sa.text(
    """
    UPDATE dead_letters SET resolved_at = now(), resolution = :resolution
    WHERE source = :source AND source_id = :source_id AND resolved_at IS NULL
    """
)


def ledger_verdict(
    status: str, amount: int, paid: int, refunded: int
) -> tuple[str | None, str | None]:
    """(status the ledger proves or None, disagreement it cannot settle or None)."""
    if refunded > 0:
        if paid < amount:
            return (
                None,
                f"refund of {refunded} recorded but only {paid} of {amount} paid",
            )
        if paid - refunded >= amount:
            return "PAID", None  # a payment made twice, the extra one refunded
        return "REFUNDED", None
    if paid >= amount:
        extra = f"overpaid: {paid} recorded for {amount}" if paid > amount else None
        return "PAID", extra
    if paid > 0:
        return None, f"partly paid: {paid} of {amount} recorded"
    if status in ("PAID", "REFUNDED"):
        return None, f"status {status} but no payment in the ledger"
    return None, None


def _reconcile_fee(connection: Connection, row: Row[Any], since: datetime) -> str:
    proven, problem = ledger_verdict(row.status, row.amount, row.paid, row.refunded)
    verdict = "in_sync"
    if proven and proven != row.status:
        connection.execute(SET_FEE_STATUS, {"id": row.id, "status": proven})
        if row.status == "UNCOLLECTIBLE":
            connection.execute(
                RESOLVE_DEAD_LETTER,
                {
                    "source": DEAD_LETTER_SOURCE,
                    "source_id": str(row.id),
                    "resolution": f"{proven.lower()} per ledger",
                },
            )
        logger.info(
            "fee status corrected from the ledger",
            extra=logs.event(
                "fee_status_corrected",
                fee_id=row.id,
                from_status=row.status,
                to_status=proven,
            ),
        )
        verdict = "corrected"
    if problem:
        errorlog.report(
            connection,
            "reconcile_fee_status",
            f"fee:{row.id}:{problem}",
            f"fee {row.id} ({row.status}): {problem}",
            since,
            {
                "fee_id": row.id,
                "venue_id": row.venue_id,
                "status": row.status,
                "amount": row.amount,
                "paid": row.paid,
                "refunded": row.refunded,
            },
            level="WARNING" if proven else "ERROR",
        )
        verdict = "corrected" if verdict == "corrected" else "reported"
    return verdict


@job("reconcile_fee_status")
def reconcile_fee_status(ctx: RunContext) -> JobResult:
    """The ledger is the truth for fees. For each fee changed, or given a ledger
    entry, within ``fee_reconcile_window_hours`` (and, once a day, at the run of
    the WITA day's first half-hour, for every fee: drift older than the window,
    from a restored backup or a hand edit, is found within a day):

    * a refund entry (after payments covering the fee): REFUNDED, unless what
      stays paid still covers the fee (a duplicate payment refunded): PAID;
    * payment entries covering the amount: PAID (an overpayment is also reported);
      an UNCOLLECTIBLE fee corrected so has its dead letter resolved;
    * anything else that disagrees (partly paid, PAID or REFUNDED with no payment,
      a refund of money never received) goes to ``error_log`` once per WITA day
      and the fee is left as it is.
    Fees being collected right now (row locked) are left to the next run.
    """
    zone = timeutil.zone(ctx.settings.business_timezone)
    report_since = timeutil.day(ctx.now, zone).start
    whole_ledger = ctx.tick - timeutil.day(ctx.tick, zone).start < FULL_PASS_WITHIN
    since = (
        datetime.min.replace(tzinfo=ctx.now.tzinfo)
        if whole_ledger
        else ctx.now - timedelta(hours=ctx.settings.fee_reconcile_window_hours)
    )
    counts: Counter[str] = Counter()
    after = 0
    while True:
        checkpoint()
        with ctx.engine.begin() as connection:
            ids = [
                row[0]
                for row in connection.execute(
                    CANDIDATES,
                    {
                        "since": since,
                        "after": after,
                        "limit": ctx.settings.job_chunk_size,
                    },
                )
            ]
            if not ids:
                break
            rows = list(connection.execute(FEES_WITH_LEDGER, {"ids": ids}))
            for row in rows:
                counts[_reconcile_fee(connection, row, report_since)] += 1
        counts["checked"] += len(ids)
        counts["busy"] += len(ids) - len(rows)
        after = ids[-1]
    names = ("checked", "in_sync", "corrected", "reported", "busy")
    result: dict[str, Any] = {n: counts[n] for n in names}
    result["whole_ledger"] = whole_ledger
    logger.info(
        "fee statuses reconciled", extra=logs.event("reconcile_fee_status", **result)
    )
    return result
