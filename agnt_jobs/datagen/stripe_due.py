"""Real Stripe work for the four billing jobs: their due work made both in a
localstripe and in our tables, for the job benchmark and for ``make demo`` (which
makes it once, in its one localstripe, for every Stripe job).

In the bench, each run of a Stripe job gets a localstripe of its own, fresh, as
its copy of the data is: the jobs' crash-safety lookups (a customer's invoices,
items and payment intents, matched by our key) must only ever find what this
copy's run made. Before
the job starts, the objects its due rows need are made in that localstripe (the
same way for every scale, so scale 10 and scale 100 get the same work) and the
copy's rows are pointed at them:

* ``monthly_invoice``: active venue subscriptions linked to Stripe subscriptions
  of customers with a saved card; one in ten cards is declined on charge;
* ``retry_pending_fees``: failed fees due for another try, of such customers;
* ``reconcile_subscription_state``: linked subscriptions, every other one with a
  stale status and period end to correct;
* ``charge_unbilled_usage``: API keys of Stripe customers with ten unbilled usage
  events each from yesterday.

The copy's row counters are read after this and before the job, so "rows changed"
is the job's alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from agnt_jobs.standins.localstripe import StripeObjects

STRIPE_JOBS = frozenset(
    {
        "charge_unbilled_usage",
        "monthly_invoice",
        "reconcile_subscription_state",
        "retry_pending_fees",
    }
)
USAGE_EVENTS_PER_KEY = 10


@dataclass(frozen=True)
class Prepared:
    """What was made for a run: shown beside the job's figures."""

    rows: int
    customers: int

    def describe(self) -> str:
        return f"on localstripe: {self.rows} due rows, {self.customers} customers"


Preparer = Callable[[psycopg.Connection, StripeObjects, int, datetime], Prepared]

PICK_SUBSCRIPTIONS = """
SELECT id FROM subscriptions WHERE status = 'active' ORDER BY id LIMIT %s
"""

LINK_SUBSCRIPTIONS = """
UPDATE subscriptions s
SET stripe_customer_id = v.customer, stripe_subscription_id = v.subscription,
    status = coalesce(v.status, s.status),
    current_period_end = coalesce(v.period_end, s.current_period_end)
FROM unnest(%(ids)s::bigint[], %(customers)s::text[], %(subscriptions)s::text[],
            %(statuses)s::text[], %(period_ends)s::timestamptz[])
     AS v(id, customer, subscription, status, period_end)
WHERE s.id = v.id
"""


def _link_subscriptions(
    connection: psycopg.Connection,
    stripe: StripeObjects,
    count: int,
    in_sync_every: int | None,
) -> Prepared:
    """Link ``count`` active subscriptions to new Stripe subscriptions; with
    ``in_sync_every``, that share of them carries Stripe's own status and period
    end, the others keep the fixture's (which Stripe contradicts)."""
    ids = [row[0] for row in connection.execute(PICK_SUBSCRIPTIONS, [count])]
    customers = stripe.customers(len(ids))
    made = [stripe.subscription(customer) for customer in customers]
    statuses: list[str | None] = []
    period_ends: list[datetime | None] = []
    for n, subscription in enumerate(made):
        synced = in_sync_every is not None and n % in_sync_every == 0
        end = datetime.fromtimestamp(subscription["current_period_end"], UTC)
        statuses.append(subscription["status"] if synced else None)
        period_ends.append(end if synced else None)
    connection.execute(
        LINK_SUBSCRIPTIONS,
        {
            "ids": ids,
            "customers": customers,
            "subscriptions": [subscription["id"] for subscription in made],
            "statuses": statuses,
            "period_ends": period_ends,
        },
    )
    return Prepared(len(ids), len(customers))


def monthly_invoice(
    connection: psycopg.Connection, stripe: StripeObjects, count: int, at: datetime
) -> Prepared:
    return _link_subscriptions(connection, stripe, count, in_sync_every=None)


def reconcile_subscription_state(
    connection: psycopg.Connection, stripe: StripeObjects, count: int, at: datetime
) -> Prepared:
    return _link_subscriptions(connection, stripe, count, in_sync_every=2)


DUE_FEES = """
INSERT INTO fee_collections (venue_id, stripe_customer_id, amount, description,
                             status, attempts, next_retry_at, created_at, updated_at,
                             last_error)
SELECT (SELECT min(id) FROM venues) + (n - 1) %% (SELECT count(*) FROM venues),
       customer, 25000 + n %% 10 * 1000, 'Booking fee', 'FAILED', 1,
       %(at)s - interval '1 minute', %(at)s - interval '1 day',
       %(at)s - interval '1 hour', 'card declined'
FROM unnest(%(customers)s::text[]) WITH ORDINALITY AS c(customer, n)
"""


def retry_pending_fees(
    connection: psycopg.Connection, stripe: StripeObjects, count: int, at: datetime
) -> Prepared:
    customers = stripe.customers(count)
    connection.execute(DUE_FEES, {"customers": customers, "at": at})
    return Prepared(count, count)


USAGE_KEYS = """
WITH keys AS (
    INSERT INTO api_keys (key_hash, key_prefix, name, stripe_customer_id,
                          queries_today, last_reset_on, created_at)
    SELECT md5('bench-stripe-key-' || customer), 'agnt_s' || n, 'metered ' || n,
           customer, 0, CAST(%(at)s AS date), %(at)s - interval '30 days'
    FROM unnest(%(customers)s::text[]) WITH ORDINALITY AS c(customer, n)
    RETURNING id
)
INSERT INTO api_key_usage_events (api_key_id, occurred_at, quantity)
SELECT id, %(at)s - interval '1 day' - e * interval '1 minute', 1 + e %% 3
FROM keys, generate_series(1, %(events)s) e
"""


def charge_unbilled_usage(
    connection: psycopg.Connection, stripe: StripeObjects, count: int, at: datetime
) -> Prepared:
    customers = stripe.customers(count, card=False)
    connection.execute(
        USAGE_KEYS,
        {"customers": customers, "at": at, "events": USAGE_EVENTS_PER_KEY},
    )
    return Prepared(count * USAGE_EVENTS_PER_KEY, count)


PREPARERS: dict[str, Preparer] = {
    "charge_unbilled_usage": charge_unbilled_usage,
    "monthly_invoice": monthly_invoice,
    "reconcile_subscription_state": reconcile_subscription_state,
    "retry_pending_fees": retry_pending_fees,
}


def prepare(
    job_id: str, database_url: str, stripe: StripeObjects, count: int, at: datetime
) -> Prepared:
    """Make ``job_id``'s due work (``count`` customers' worth) in the copy at
    ``database_url`` and in ``stripe``; one transaction on our side."""
    with psycopg.connect(database_url) as connection:
        return PREPARERS[job_id](connection, stripe, count, at)
