"""Keeping local subscription rows in line with Stripe's, which is their truth."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from agnt_jobs import logs, timeutil
from agnt_jobs.checkpoint import checkpoint
from agnt_jobs.clients.errors import ClientError, PermanentError
from agnt_jobs.clients.stripe_client import StripeGateway
from agnt_jobs.jobs import errorlog
from agnt_jobs.models.billing import SUBSCRIPTION_STATUSES
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job

logger = logging.getLogger(__name__)

SUBSCRIPTIONS_CHUNK = sa.text(
    """
    SELECT id, venue_id, stripe_customer_id, stripe_subscription_id, status,
           current_period_end
    FROM subscriptions
    WHERE id > :after AND stripe_subscription_id IS NOT NULL
    ORDER BY id
    LIMIT :limit
    """
)

CORRECT_SUBSCRIPTION = sa.text(
    """
    UPDATE subscriptions
    SET status = :status, current_period_end = :period_end, updated_at = now()
    WHERE id = :id AND status = :old_status
      AND current_period_end IS NOT DISTINCT FROM :old_period_end
    RETURNING id
    """
)


def _period_end(remote: dict[str, Any]) -> datetime | None:
    """Stripe's current period end: on the subscription (older API versions,
    localstripe) or on its items (2025-03-31 and later)."""
    value = remote.get("current_period_end")
    if value is None:
        items = (remote.get("items") or {}).get("data") or []
        ends = [i["current_period_end"] for i in items if i.get("current_period_end")]
        value = max(ends) if ends else None
    return datetime.fromtimestamp(value, UTC) if value else None


def _compare(row: Row[Any], remote: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """'in_sync', 'drift' (with the values Stripe proves) or 'unprovable'."""
    if remote.get("customer") != row.stripe_customer_id:
        return "unprovable", {
            "problem": "customer differs",
            "stripe": remote.get("customer"),
        }
    if remote.get("status") not in SUBSCRIPTION_STATUSES:
        return "unprovable", {
            "problem": "unknown status",
            "stripe": remote.get("status"),
        }
    wanted = {"status": remote["status"], "period_end": _period_end(remote)}
    if (wanted["status"], wanted["period_end"]) == (row.status, row.current_period_end):
        return "in_sync", wanted
    return "drift", wanted


def _reconcile_chunk(
    ctx: RunContext, stripe: StripeGateway, rows: list[Row[Any]], since: datetime
) -> Counter[str]:
    counts: Counter[str] = Counter()
    verdicts = []
    for row in rows:  # Stripe first, outside any transaction
        try:
            remote = stripe.subscription(row.stripe_subscription_id)
            verdicts.append((row, *_compare(row, remote)))
        except PermanentError as error:
            verdicts.append(
                (row, "unprovable", {"problem": "not in Stripe", "error": str(error)})
            )
        except ClientError:
            counts["unreachable"] += 1
    with ctx.engine.begin() as connection:
        for row, verdict, detail in verdicts:
            if verdict == "drift":
                verdict = _correct(connection, row, detail)
            if verdict == "unprovable":
                errorlog.report(
                    connection,
                    "reconcile_subscription_state",
                    f"subscription:{row.id}:{detail['problem']}",
                    f"subscription {row.id} ({row.stripe_subscription_id}): "
                    f"{detail['problem']}; left unchanged",
                    since,
                    {"subscription_id": row.id, "venue_id": row.venue_id, **detail},
                )
            counts[verdict] += 1
    return counts


def _correct(connection: Connection, row: Row[Any], wanted: dict[str, Any]) -> str:
    params = {
        "id": row.id,
        "status": wanted["status"],
        "period_end": wanted["period_end"],
        "old_status": row.status,
        "old_period_end": row.current_period_end,
    }
    try:
        with connection.begin_nested():
            changed = connection.execute(CORRECT_SUBSCRIPTION, params).first()
    except IntegrityError:
        # Another live subscription of the venue: which one is right is not ours
        # to guess.
        wanted["problem"] = "second live subscription"
        return "unprovable"
    if changed is None:
        return "changed_meanwhile"  # a webhook updated it since we read it
    logger.info(
        "subscription drift corrected",
        extra=logs.event(
            "subscription_drift_corrected",
            subscription_id=row.id,
            local_status=row.status,
            stripe_status=wanted["status"],
            local_period_end=row.current_period_end,
            stripe_period_end=wanted["period_end"],
        ),
    )
    return "corrected"


@job("reconcile_subscription_state", needs=("stripe_api_key",))
def reconcile_subscription_state(ctx: RunContext) -> JobResult:
    """Stripe is the truth for a subscription: each local subscription with a Stripe
    id whose status or current period end differs from Stripe's is corrected (only
    if the row did not change meanwhile), and each correction is logged.

    What cannot be proved is reported to ``error_log`` (once per WITA day) and left
    alone: a subscription Stripe does not know, one whose Stripe customer is not
    ours, an unknown status, or a correction that would give a venue a second live
    subscription. Stripe unreachable: the row is counted and retried next run.
    """
    stripe = StripeGateway.from_settings(ctx.settings)
    since = timeutil.day(ctx.now, timeutil.zone(ctx.settings.business_timezone)).start
    counts: Counter[str] = Counter()
    after = 0
    while True:
        checkpoint()
        with ctx.engine.connect() as connection:
            rows = list(
                connection.execute(
                    SUBSCRIPTIONS_CHUNK,
                    {"after": after, "limit": ctx.settings.job_chunk_size},
                )
            )
        if not rows:
            break
        counts.update(_reconcile_chunk(ctx, stripe, rows, since))
        after = rows[-1].id
    names = ("in_sync", "corrected", "changed_meanwhile", "unprovable", "unreachable")
    result = {"checked": sum(counts.values()), **{n: counts[n] for n in names}}
    logger.info(
        "subscriptions reconciled",
        extra=logs.event("reconcile_subscription_state", **result),
    )
    return result
