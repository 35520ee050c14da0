"""Demo data for billing: six months of venue invoices, per-booking platform fees of
the last 30 days, and the ledger entries that record the money.

Invoices: one per venue per WITA month for each subscription that was paying,
mostly PAID. Last month's run (the 1st, 09:00 WITA) was interrupted, as a crash
would leave it: a few invoices are PENDING (recorded, Stripe never called), a few
OPEN and never paid, a few venues not planned yet, so ``monthly_invoice`` run by
hand finishes it. Past-due venues have an OPEN invoice whose payment was declined.

Fees: a booking fee for some completed bookings at venues with a live
subscription. Nearly all are PAID; some FAILED and due for a retry, a few fresh
PENDING ones, some UNCOLLECTIBLE (with a dead letter), a few REFUNDED, and a few
whose status disagrees with the ledger (paid per the ledger but FAILED, or PAID
with only part of the money recorded): ``reconcile_fee_status``'s work.

The ledger is append-only and is only ever inserted into here: a ``fee`` entry when
a fee accrues, ``charge`` and ``payment`` entries for invoices, ``payment`` and
``refund`` entries for fees, under the keys the jobs themselves use
(``fee:{id}:payment``, ``invoice:{venue}:{month}:charge``), so a job that records
the same fact again records nothing. Stripe ids are fake (``cus_demo_...``,
``in_demo_...``, ``pi_demo_...``): Stripe, or localstripe, knows none of them.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from agnt_jobs.demo.seeders import Plan, in_chunks, next_id, seeder, weighted

# Rp 500,000 or Rp 1,200,000 a month, in minor units (as Stripe counts IDR).
PLAN_AMOUNT = (
    "CASE WHEN pg_temp.rnd(s.venue_id, 601) < 0.8 THEN 50000000 ELSE 120000000 END"
)
MONTHS = 6
DECLINED = "stripe: CardError: Your card was declined."

# Per invoice: r1 draws its fate; months back k (1 = last month).
INVOICE_STATUS = f"""
CASE
    WHEN s.status = 'unpaid' AND k <= 2 THEN 'UNCOLLECTIBLE'
    WHEN k = 1 AND s.status = 'past_due' THEN 'OPEN'
    WHEN k = 1 AND r1 < 0.08 THEN 'PENDING'
    WHEN k = 1 AND r1 < 0.16 THEN 'OPEN'
    ELSE {weighted({"'PAID'": 98.5, "'VOID'": 1.5}, "r2")}
END
"""

INVOICES = f"""
INSERT INTO monthly_invoices (
    venue_id, month, period_start, period_end, stripe_customer_id,
    stripe_subscription_id, idempotency_key, description, status, stripe_invoice_id,
    amount_due, amount_paid, currency, payment_attempts, last_error, created_at,
    updated_at, paid_at)
SELECT s.venue_id, p.label, p.start_at, p.end_at, s.stripe_customer_id,
       s.stripe_subscription_id, 'invoice:' || s.venue_id || ':' || p.label,
       'AGNT venue subscription ' || p.label
           || ' [invoice:' || s.venue_id || ':' || p.label || ']',
       i.status,
       CASE WHEN i.status <> 'PENDING'
            THEN 'in_demo_' || s.venue_id || '_' || replace(p.label, '-', '') END,
       CASE WHEN i.status <> 'PENDING' THEN {PLAN_AMOUNT} END,
       CASE WHEN i.status = 'PAID' THEN {PLAN_AMOUNT}
            WHEN i.status IN ('OPEN', 'UNCOLLECTIBLE') THEN 0 END,
       'IDR',
       CASE WHEN i.status IN ('PAID', 'UNCOLLECTIBLE')
                 OR (i.status = 'OPEN' AND s.status = 'past_due') THEN 1
            ELSE 0 END,
       CASE WHEN i.status = 'UNCOLLECTIBLE'
                 OR (i.status = 'OPEN' AND s.status = 'past_due') THEN '{DECLINED}'
       END,
       p.made, p.made + interval '3 seconds',
       CASE WHEN i.status = 'PAID' THEN p.made + interval '3 seconds' END
FROM subscriptions AS s
CROSS JOIN generate_series(1, {MONTHS}) AS k
CROSS JOIN LATERAL (
    SELECT date_trunc('month', CAST(:at AS timestamptz) AT TIME ZONE :tz)
           - make_interval(months => k) AS local_start,
           pg_temp.rnd(s.venue_id * 16 + k, 611) AS r1,
           pg_temp.rnd(s.venue_id * 16 + k, 612) AS r2,
           pg_temp.rnd(s.venue_id * 16 + k, 613) AS r3
) AS r
CROSS JOIN LATERAL (
    SELECT to_char(r.local_start, 'YYYY-MM') AS label,
           r.local_start AT TIME ZONE :tz AS start_at,
           (r.local_start + interval '1 month') AT TIME ZONE :tz AS end_at,
           -- the 1st at 09:00 WITA, when monthly_invoice runs
           least((r.local_start + interval '1 month 9 hours'
                  + r.r3 * interval '20 minutes') AT TIME ZONE :tz, :at) AS made
) AS p
CROSS JOIN LATERAL (SELECT {INVOICE_STATUS} AS status) AS i
WHERE s.venue_id BETWEEN :lo AND :hi
  AND s.created_at < p.end_at AND p.made <= :at
  -- paying now, or paying until a few months ago
  AND (s.status IN ('active', 'past_due', 'unpaid')
       OR (s.status = 'canceled' AND k > 2))
  -- last month's run has not reached these venues yet
  AND NOT (k = 1 AND r.r1 > 0.92 AND s.status = 'active')
ORDER BY s.venue_id, k DESC
"""

INVOICE_LEDGER = """
INSERT INTO ledger_entries (created_at, entry_type, amount, currency,
                            idempotency_key, venue_id, stripe_customer_id,
                            invoice_id, stripe_reference, description)
SELECT e.at, e.entry_type, e.amount, i.currency,
       i.idempotency_key || ':' || e.entry_type, i.venue_id, i.stripe_customer_id,
       i.id, i.stripe_invoice_id, i.description
FROM monthly_invoices AS i
CROSS JOIN LATERAL (
    VALUES ('charge', i.amount_due, i.updated_at),
           ('payment', i.amount_paid, i.paid_at)
) AS e (entry_type, amount, at)
WHERE i.id BETWEEN :lo AND :hi AND i.stripe_invoice_id IS NOT NULL
  AND e.amount > 0 AND e.at IS NOT NULL
ORDER BY i.id, e.entry_type
"""

# A fee's fate by its draw r1 (fresh ones are still PENDING).
FEE_FATE = weighted(
    {
        "'paid'": 89,
        "'paid_retry'": 1.5,  # declined once, paid on the retry
        "'failed_due'": 3,
        "'failed_later'": 2,
        "'uncollectible'": 1.5,
        "'refunded'": 1.5,
        "'paid_but_failed'": 1,  # the ledger has the payment, the status missed it
        "'part_paid'": 0.5,  # PAID, but the ledger has only half of it
    },
    "pg_temp.rnd(b.id, 621)",
)
FEE_STATUS = {
    "fresh": "PENDING",
    "paid": "PAID",
    "paid_retry": "PAID",
    "part_paid": "PAID",
    "failed_due": "FAILED",
    "failed_later": "FAILED",
    "paid_but_failed": "FAILED",
    "uncollectible": "UNCOLLECTIBLE",
    "refunded": "REFUNDED",
}
PAID_FATES = "('paid', 'paid_retry', 'part_paid', 'refunded', 'paid_but_failed')"
DECLINED_FATES = "('failed_due', 'failed_later', 'uncollectible', 'paid_but_failed')"

FEES = f"""
INSERT INTO fee_collections (
    venue_id, booking_id, stripe_customer_id, amount, currency, description, status,
    attempts, next_retry_at, stripe_payment_intent_id, last_error, created_at,
    updated_at, paid_at)
SELECT b.venue_id, b.id, s.stripe_customer_id, 1500000 * b.party_size, 'IDR',
       'Booking fee, booking ' || b.id || ' (' || b.party_size || ' guests)',
       CASE f.fate {" ".join(f"WHEN '{k}' THEN '{v}'" for k, v in FEE_STATUS.items())}
       END,
       CASE f.fate WHEN 'fresh' THEN 0 WHEN 'uncollectible' THEN 5
                   WHEN 'paid_retry' THEN 2
                   WHEN 'failed_due' THEN 1 + floor(r2 * 3)::int
                   WHEN 'failed_later' THEN 1 + floor(r2 * 3)::int
                   ELSE 1 END,
       t.next_retry_at,
       CASE WHEN f.fate IN {PAID_FATES} THEN 'pi_demo_b' || b.id END,
       CASE WHEN f.fate IN {DECLINED_FATES} THEN '{DECLINED}' END,
       f.made, least(t.changed, :at),
       CASE WHEN f.fate = 'refunded' THEN f.made + interval '4 seconds'
            WHEN f.fate IN ('paid', 'paid_retry', 'part_paid') THEN t.changed END
FROM bookings AS b
JOIN subscriptions AS s
  ON s.venue_id = b.venue_id AND s.status IN ('trialing', 'active', 'past_due')
CROSS JOIN LATERAL (
    SELECT pg_temp.rnd(b.id, 622) AS r2, pg_temp.rnd(b.id, 623) AS r3,
           b.status_changed_at + interval '2 minutes' AS made
) AS r
CROSS JOIN LATERAL (
    SELECT r.made,
           CASE WHEN r.made > :at - interval '30 minutes' THEN 'fresh'
                -- a fee gives up after five declines over about a day
                WHEN r.made > :at - interval '1 day' AND {FEE_FATE} = 'uncollectible'
                    THEN 'failed_due'
                ELSE {FEE_FATE} END AS fate
) AS f
CROSS JOIN LATERAL (
    SELECT CASE f.fate
               WHEN 'failed_due'
                   THEN greatest(f.made, :at - r3 * interval '2 hours')
               WHEN 'failed_later' THEN :at + r3 * interval '4 hours'
               WHEN 'paid_but_failed' THEN :at + interval '1 hour'
               ELSE f.made END AS next_retry_at,
           CASE f.fate
               WHEN 'paid' THEN f.made + interval '4 seconds'
               WHEN 'part_paid' THEN f.made + interval '4 seconds'
               WHEN 'paid_retry' THEN f.made + interval '1 hour 5 seconds'
               WHEN 'uncollectible' THEN f.made + interval '16 hours'
               WHEN 'refunded' THEN f.made + r2 * interval '3 days'
               WHEN 'paid_but_failed'
                   THEN greatest(f.made, :at - r2 * interval '6 days')
               WHEN 'fresh' THEN f.made
               -- the last decline, one backoff step before the next try
               ELSE greatest(f.made, :at - r3 * interval '2 hours'
                                     - interval '1 hour') END AS changed
) AS t
WHERE b.id BETWEEN :lo AND :hi AND b.status = 'COMPLETED'
  AND b.status_changed_at >= :at - interval '30 days'
  AND b.status_changed_at + interval '2 minutes' <= :at
  AND pg_temp.rnd(b.id, 620) < 0.3
ORDER BY b.id
"""

# The backend's accrual, the money received (half of it for part_paid fees) and the
# refunds. The fate is drawn again from the booking id, exactly as FEES drew it.
FEE_LEDGER = f"""
INSERT INTO ledger_entries (created_at, entry_type, amount, currency,
                            idempotency_key, venue_id, stripe_customer_id, fee_id,
                            stripe_reference, description)
SELECT e.at, e.entry_type, e.amount, f.currency,
       'fee:' || f.id || ':' || e.suffix, f.venue_id, f.stripe_customer_id, f.id,
       e.reference, f.description
FROM fee_collections AS f
JOIN bookings AS b ON b.id = f.booking_id
CROSS JOIN LATERAL (
    SELECT CASE WHEN f.stripe_payment_intent_id IS NULL THEN NULL
                WHEN f.status = 'PAID' AND {FEE_FATE} = 'part_paid' THEN f.amount / 2
                ELSE f.amount END AS paid
) AS m
CROSS JOIN LATERAL (
    VALUES
        ('fee', 'accrued', f.amount, f.created_at, NULL),
        ('payment', 'payment', m.paid,
         coalesce(f.paid_at, f.updated_at - interval '1 minute'),
         f.stripe_payment_intent_id),
        ('refund', 'refund', CASE WHEN f.status = 'REFUNDED' THEN f.amount END,
         f.updated_at, 're_demo_' || f.id)
) AS e (entry_type, suffix, amount, at, reference)
WHERE f.id BETWEEN :lo AND :hi AND e.amount > 0
ORDER BY f.id, e.at, e.entry_type
"""

FEE_LETTERS = """
INSERT INTO dead_letters (source, source_id, error_class, error, payload, attempts,
                          created_at, resolved_at, resolution)
SELECT 'fee_collection', f.id::text, 'card_declined', f.last_error,
       jsonb_build_object('venue_id', f.venue_id, 'amount', f.amount,
                          'currency', f.currency,
                          'stripe_customer_id', f.stripe_customer_id),
       f.attempts, f.updated_at,
       CASE WHEN pg_temp.rnd(f.id, 631) < 0.3
            THEN least(f.updated_at + interval '2 days', :at) END,
       CASE WHEN pg_temp.rnd(f.id, 631) < 0.3 THEN 'venue paid by bank transfer' END
FROM fee_collections AS f
WHERE f.id BETWEEN :lo AND :hi AND f.status = 'UNCOLLECTIBLE'
ORDER BY f.id
"""


@seeder(
    "billing",
    tables=("monthly_invoices", "fee_collections", "ledger_entries"),
    after=("bookings", "messaging"),
)
def fill(connection: Connection, plan: Plan) -> dict[str, int]:
    ledger_first = next_id(connection, "ledger_entries")
    first = next_id(connection, "monthly_invoices")
    invoices = in_chunks(connection, plan, INVOICES, *plan.ranges["venues"])
    in_chunks(
        connection, plan, INVOICE_LEDGER, first, next_id(connection, "monthly_invoices")
    )

    first = next_id(connection, "fee_collections")
    fees = in_chunks(connection, plan, FEES, *plan.ranges["bookings"])
    last = next_id(connection, "fee_collections") - 1
    plan.ranges["fee_collections"] = (first, last)
    in_chunks(connection, plan, FEE_LEDGER, first, last)
    letters = in_chunks(connection, plan, FEE_LETTERS, first, last)
    ledger = next_id(connection, "ledger_entries") - ledger_first
    return {
        "monthly_invoices": invoices,
        "fee_collections": fees,
        "ledger_entries": ledger,
        "fee_dead_letters": letters,
    }
