"""Demo data for outbound webhooks: the endpoints venues and partners registered,
and a week of deliveries of booking events to them.

Per scale unit: 8 endpoints (venues' own systems and partners'), each receiving
about 40 events a day. Nearly all deliveries are DELIVERED; some FAILED and due for
a retry (``drain_webhook_retries``' work), some FAILED and waiting out their
backoff, a few DEAD with a dead letter, and the newest still PENDING (the backend's
first attempt in flight). One endpoint in eight was disabled after five dead
deliveries in a row (its failed deliveries wait for an operator) and one is
flaky, four deaths from being disabled.

URLs are ``{--webhook-url}/hooks/{endpoint id}`` (default
``http://127.0.0.1:8791``); point it at a receiver to watch the retries succeed.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from agnt_jobs.demo.seeders import (
    Plan,
    in_chunks,
    next_id,
    pick,
    seeder,
    sync_identity,
    weighted,
)

ENDPOINTS_PER_SCALE = 8
PER_ENDPOINT = 280  # a week at about 40 events a day
DISABLE_AFTER = 5
EVENT_TYPES = (
    "booking.confirmed", "booking.cancelled", "booking.completed", "rating.created",
)  # fmt: skip

# Endpoint roles by id, so that every scale has one of each: 7 of 8 healthy.
DISABLED = "e.id % 8 = 7"
FLAKY = "e.id % 8 = 3"

ENDPOINTS = f"""
INSERT INTO webhook_endpoints (id, venue_id, url, secret, created_at, dead_count,
                               disabled_at, disabled_reason)
SELECT e.id,
       CASE WHEN pg_temp.rnd(e.id, 951) < 0.7
            THEN :venues_first + floor(pg_temp.rnd(e.id, 952) * :venues_count)::bigint
       END,
       :webhook_url || '/hooks/' || e.id, 'whsec_demo_' || md5('secret' || e.id),
       :at - interval '30 days' - pg_temp.rnd(e.id, 953) * interval '300 days',
       CASE WHEN {DISABLED} THEN {DISABLE_AFTER} WHEN {FLAKY} THEN {DISABLE_AFTER - 1}
            ELSE 0 END,
       CASE WHEN {DISABLED} THEN :at - interval '3 days' END,
       CASE WHEN {DISABLED} THEN '{DISABLE_AFTER} dead deliveries in a row' END
FROM generate_series(CAST(:lo AS bigint), :hi) AS e (id)
"""

FATE = weighted(
    {
        "'delivered'": 94,
        "'failed_due'": 3,
        "'failed_later'": 1,
        "'dead'": 2,
    },
    "r1",
)

DELIVERIES = f"""
INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload, status,
                                attempts, next_attempt_at, last_error,
                                last_status_code, created_at, delivered_at)
SELECT e.id, 'evt_demo_' || n, d.event_type,
       jsonb_build_object('type', d.event_type,
                          'booking_id', :bookings_first
                              + floor(r2 * :bookings_count)::bigint,
                          'venue_id', coalesce(e.venue_id, :venues_first),
                          'occurred_at', d.made),
       CASE d.fate WHEN 'delivered' THEN 'DELIVERED' WHEN 'dead' THEN 'DEAD'
                   WHEN 'pending' THEN 'PENDING' ELSE 'FAILED' END,
       CASE d.fate WHEN 'delivered' THEN 1 + floor(power(r3, 4) * 3)::int
                   WHEN 'dead' THEN 8 WHEN 'pending' THEN 0
                   ELSE 1 + floor(r3 * 6)::int END,
       CASE d.fate WHEN 'failed_due'
                       THEN greatest(d.made, :at - r3 * interval '30 minutes')
                   WHEN 'failed_later' THEN :at + r3 * interval '2 hours'
                   ELSE d.made END,
       CASE WHEN d.fate IN ('failed_due', 'failed_later', 'dead', 'stranded')
            THEN CASE WHEN r2 < 0.5 THEN 'POST ' || e.url || ': HTTP 503'
                      ELSE 'POST ' || e.url || ': timed out after 10s' END END,
       CASE WHEN d.fate IN ('failed_due', 'failed_later', 'dead', 'stranded')
                 AND r2 < 0.5 THEN 503 WHEN d.fate = 'delivered' THEN 200 END,
       d.made,
       CASE WHEN d.fate = 'delivered'
            THEN d.made + interval '1 second'
                 + floor(power(r3, 4) * 3) * interval '2 minutes' END
FROM webhook_endpoints AS e
CROSS JOIN generate_series(0, {PER_ENDPOINT - 1}) AS slot
CROSS JOIN LATERAL (
    SELECT e.id * {PER_ENDPOINT} + slot AS n,
           pg_temp.rnd(e.id * {PER_ENDPOINT} + slot, 961) AS r1,
           pg_temp.rnd(e.id * {PER_ENDPOINT} + slot, 962) AS r2,
           pg_temp.rnd(e.id * {PER_ENDPOINT} + slot, 963) AS r3
) AS r
CROSS JOIN LATERAL (
    SELECT {pick(EVENT_TYPES, "r2")} AS event_type,
           :at - interval '7 days'
               + (slot + r1) * interval '7 days' / {PER_ENDPOINT} AS made
) AS m
CROSS JOIN LATERAL (
    SELECT m.event_type, m.made,
           CASE WHEN m.made > :at - interval '2 minutes' THEN 'pending'
                -- nothing has been sent to a disabled endpoint since
                WHEN e.disabled_at IS NOT NULL AND m.made > e.disabled_at
                    THEN 'stranded'
                WHEN m.made > :at - interval '1 day' AND {FATE} = 'dead'
                    THEN 'failed_due'
                WHEN {FLAKY} AND m.made > :at - interval '1 day' AND r2 < 0.3
                    THEN 'failed_due'
                ELSE {FATE} END AS fate
) AS d
WHERE e.id BETWEEN :lo AND :hi AND m.made <= :at
ORDER BY e.id, slot
"""

WEBHOOK_LETTERS = """
INSERT INTO dead_letters (source, source_id, error_class, error, payload, attempts,
                          created_at)
SELECT 'webhook', d.id::text, 'exhausted', d.last_error,
       jsonb_build_object('endpoint_id', d.endpoint_id, 'event', d.event_type),
       d.attempts, least(d.created_at + interval '20 hours', :at)
FROM webhook_deliveries AS d
WHERE d.id BETWEEN :lo AND :hi AND d.status = 'DEAD'
ORDER BY d.id
"""


@seeder(
    "webhooks",
    tables=("webhook_endpoints", "webhook_deliveries"),
    after=("bookings", "billing"),
)
def fill(connection: Connection, plan: Plan) -> dict[str, int]:
    first = next_id(connection, "webhook_endpoints")
    last = first + ENDPOINTS_PER_SCALE * plan.scale - 1
    endpoints = in_chunks(
        connection, plan, ENDPOINTS, first, last, webhook_url=plan.webhook_url
    )
    sync_identity(connection, "webhook_endpoints")
    deliveries_first = next_id(connection, "webhook_deliveries")
    deliveries = in_chunks(
        connection, plan, DELIVERIES, first, last, chunk=plan.chunk // PER_ENDPOINT
    )
    letters = in_chunks(
        connection,
        plan,
        WEBHOOK_LETTERS,
        deliveries_first,
        next_id(connection, "webhook_deliveries"),
    )
    return {
        "webhook_endpoints": endpoints,
        "webhook_deliveries": deliveries,
        "webhook_dead_letters": letters,
    }
