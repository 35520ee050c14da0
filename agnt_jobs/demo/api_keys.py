"""Demo data for the B2B API: keys, their daily query history, and metered usage
billed to Stripe in daily batches.

Per scale unit: 60 keys in groups of up to three sharing one Stripe customer (one
group in five is on the free plan, never billed); a few revoked. Each key has a
month of ``api_key_daily_usage`` snapshots and a counter for today. This morning's
08:00 reset was interrupted: a quarter of the keys still carry yesterday's count
(``reset_api_key_queries_today``'s work).

Paying keys log a few metered usage events a day over the last month. Every event
before the last 05:00 WITA cutoff is in a usage batch (one per customer per cutoff,
with the batch's totals equal to its events), BILLED with a ``usage`` ledger entry,
except that this morning's run left some batches PENDING (Stripe unreachable) and
crashed before marking the events of others billed. Events since midnight are not
batched yet. Amounts use the default ``api_usage_unit_price`` (Rp 50 a query).
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from agnt_jobs.demo.seeders import (
    Plan,
    in_chunks,
    local_instant,
    next_id,
    pick,
    seeder,
    sync_identity,
)

KEYS_PER_SCALE = 60
GROUP = 3  # keys per Stripe customer
USAGE_DAYS = 30
UNIT_PRICE = 5000
KEY_NAMES = ("production", "staging", "concierge bot", "POS sync", "analytics")
STRIPE_DOWN = "stripe: APIConnectionError: timed out connecting to api.stripe.com"

# The WITA date of the last 08:00 reset and of the last 05:00 billing run.
RESET_DAY = "((CAST(:at AS timestamptz) - interval '8 hours') AT TIME ZONE :tz)::date"
BILLING_DAY = "((CAST(:at AS timestamptz) - interval '5 hours') AT TIME ZONE :tz)::date"

KEYS = f"""
INSERT INTO api_keys (id, key_hash, key_prefix, name, user_id, stripe_customer_id,
                      queries_today, last_reset_on, created_at, revoked_at)
SELECT id, encode(sha256(convert_to('agnt_demo_key_' || id, 'UTF8')), 'hex'),
       'agnt_' || substr(md5('key' || id), 1, 8), {pick(KEY_NAMES, "r1")},
       :users_first + floor(r2 * :users_count)::bigint,
       CASE WHEN pg_temp.rnd(g0, 701) >= 0.2 THEN 'cus_demo_k' || g0 END,
       CASE WHEN revoked IS NOT NULL THEN 0
            ELSE floor(rate * (extract(epoch FROM :at - reset_at) / 86400
                               + CASE WHEN behind THEN 1 ELSE 0 END))::int END,
       {RESET_DAY} - CASE WHEN behind THEN 1 ELSE 0 END,
       created, revoked
FROM generate_series(CAST(:lo AS bigint), :hi) AS id
CROSS JOIN LATERAL (
    SELECT :group_base + (id - :group_base) / {GROUP} * {GROUP} AS g0,
           pg_temp.rnd(id, 702) AS r1, pg_temp.rnd(id, 703) AS r2,
           20 + power(pg_temp.rnd(id, 704), 2) * 3000 AS rate,
           pg_temp.rnd(id, 705) < 0.25 AS behind,
           :at - interval '40 days' - pg_temp.rnd(id, 706) * interval '400 days'
               AS created,
           CASE WHEN pg_temp.rnd(id, 707) < 0.07
                THEN :at - pg_temp.rnd(id, 708) * interval '30 days' END AS revoked,
           {local_instant(RESET_DAY, "time '08:00'")} AS reset_at
) AS k
"""

DAILY_USAGE = f"""
INSERT INTO api_key_daily_usage (api_key_id, usage_date, queries, created_at)
SELECT k.id, u.day, u.queries, {local_instant("u.day + 1", "time '08:00:02'")}
FROM api_keys AS k
CROSS JOIN generate_series(1, {USAGE_DAYS}) AS d
CROSS JOIN LATERAL (
    SELECT {RESET_DAY} - d AS day,
           floor((20 + power(pg_temp.rnd(k.id, 704), 2) * 3000)
                 * (0.3 + 1.2 * pg_temp.rnd(k.id * 64 + d, 711)))::int AS queries
) AS u
WHERE k.id BETWEEN :lo AND :hi AND u.queries > 0
  AND u.day >= (k.created_at AT TIME ZONE :tz)::date
  AND (k.revoked_at IS NULL OR u.day < (k.revoked_at AT TIME ZONE :tz)::date)
  -- the keys this morning's reset has not reached yet have no row for yesterday
  AND u.day < k.last_reset_on
ORDER BY k.id, u.day
"""

EVENT_AT = local_instant(
    f"{BILLING_DAY} - {USAGE_DAYS} + j",
    "make_interval(hours => 6 * slot)"
    " + pg_temp.rnd(k.id * 256 + j * 4 + slot, 721) * interval '6 hours'",
)

# Paying keys' metered events: up to four a day over the month before the last
# billing run and since. An event before that run's cutoff is in the batch of the
# cutoff (WITA midnight) after it.
EVENTS = f"""
SELECT k.id AS key_id, k.stripe_customer_id AS customer, e.occurred_at,
       1 + floor(power(pg_temp.rnd(e.n, 722), 2) * 40)::int AS quantity,
       c.cutoff_day, to_char(c.cutoff_day, 'YYYY-MM-DD') AS label,
       c.cutoff_day = {BILLING_DAY} AS latest,
       substr(k.stripe_customer_id, 11)::bigint / 3 % 4 AS fate
FROM api_keys AS k
CROSS JOIN generate_series(0, {USAGE_DAYS + 1}) AS j
CROSS JOIN generate_series(0, 3) AS slot
CROSS JOIN LATERAL (
    SELECT k.id * 256 + j * 4 + slot AS n,
           {EVENT_AT} AS occurred_at
) AS e
CROSS JOIN LATERAL (
    SELECT CASE WHEN (e.occurred_at AT TIME ZONE :tz)::date < {BILLING_DAY}
                THEN (e.occurred_at AT TIME ZONE :tz)::date + 1 END AS cutoff_day
) AS c
WHERE k.id BETWEEN :lo AND :hi AND k.stripe_customer_id IS NOT NULL
  AND pg_temp.rnd(e.n, 723) < 0.7
  AND e.occurred_at <= :at AND e.occurred_at >= k.created_at
  AND (k.revoked_at IS NULL OR e.occurred_at < k.revoked_at)
"""

# This morning's batches: one customer in four still PENDING (Stripe timed out), and
# one in four BILLED with its events not yet marked (the run crashed before that
# step). ``fate`` cycles through customers so that every scale has both.
PENDING_BATCH = "(ev.latest AND ev.fate = 1)"
UNMARKED_BATCH = "(ev.latest AND ev.fate = 2)"

BATCHES = f"""
INSERT INTO usage_batches (stripe_customer_id, cutoff, idempotency_key, event_count,
                           quantity, unit_price, amount, currency, status,
                           stripe_invoice_item_id, last_error, created_at, billed_at)
SELECT ev.customer, ev.cutoff_day::timestamp AT TIME ZONE :tz,
       'usage:' || ev.customer || ':' || ev.label, count(*), sum(ev.quantity),
       {UNIT_PRICE}, sum(ev.quantity) * {UNIT_PRICE}, 'IDR',
       CASE WHEN {PENDING_BATCH} THEN 'PENDING' ELSE 'BILLED' END,
       CASE WHEN NOT {PENDING_BATCH}
            THEN 'ii_demo_' || substr(ev.customer, 10) || '_'
                 || replace(ev.label, '-', '') END,
       CASE WHEN {PENDING_BATCH} THEN '{STRIPE_DOWN}' END,
       {local_instant("ev.cutoff_day", "time '05:00:01'")},
       CASE WHEN NOT {PENDING_BATCH}
            THEN {local_instant("ev.cutoff_day", "time '05:00:03'")} END
FROM ({EVENTS}) AS ev
WHERE ev.cutoff_day IS NOT NULL
GROUP BY ev.customer, ev.cutoff_day, ev.label, ev.latest, ev.fate
ORDER BY ev.customer, ev.cutoff_day
"""

USAGE_EVENTS = f"""
INSERT INTO api_key_usage_events (api_key_id, occurred_at, quantity, usage_batch_id,
                                  billed_at)
SELECT ev.key_id, ev.occurred_at, ev.quantity, b.id,
       CASE WHEN NOT {UNMARKED_BATCH} THEN b.billed_at END
FROM ({EVENTS}) AS ev
LEFT JOIN usage_batches AS b
       ON b.idempotency_key = 'usage:' || ev.customer || ':' || ev.label
ORDER BY ev.key_id, ev.occurred_at
"""

USAGE_LEDGER = """
INSERT INTO ledger_entries (created_at, entry_type, amount, currency,
                            idempotency_key, stripe_customer_id, usage_batch_id,
                            stripe_reference, description)
SELECT b.billed_at, 'usage', b.amount, b.currency, b.idempotency_key || ':' || 'usage',
       b.stripe_customer_id, b.id, b.stripe_invoice_item_id,
       b.quantity || ' API queries'
FROM usage_batches AS b
WHERE b.id BETWEEN :lo AND :hi AND b.status = 'BILLED' AND b.amount > 0
ORDER BY b.id
"""


@seeder(
    "api_keys",
    tables=(
        "api_keys",
        "api_key_daily_usage",
        "usage_batches",
        "api_key_usage_events",
    ),
    after=("core", "billing"),
)
def fill(connection: Connection, plan: Plan) -> dict[str, int]:
    first = next_id(connection, "api_keys")
    last = first + KEYS_PER_SCALE * plan.scale - 1
    keys = in_chunks(connection, plan, KEYS, first, last, group_base=first)
    sync_identity(connection, "api_keys")
    daily = in_chunks(connection, plan, DAILY_USAGE, first, last)
    # ~90 events per key: whole customer groups per chunk, so a batch is complete.
    per_chunk = max(GROUP, plan.chunk // 100 // GROUP * GROUP)
    batch_first = next_id(connection, "usage_batches")
    batches = in_chunks(connection, plan, BATCHES, first, last, chunk=per_chunk)
    events = in_chunks(connection, plan, USAGE_EVENTS, first, last, chunk=per_chunk)
    in_chunks(
        connection,
        plan,
        USAGE_LEDGER,
        batch_first,
        next_id(connection, "usage_batches"),
    )
    return {
        "api_keys": keys,
        "api_key_daily_usage": daily,
        "usage_batches": batches,
        "api_key_usage_events": events,
    }
