"""Demo data for A2A traffic: one request envelope per booking of the last 30 days
(and per booking still waiting), and the venue responses to them.

Decided bookings have RESPONDED envelopes and APPLIED responses. Waiting ones are
where the A2A jobs find work: PENDING envelopes past their TTL (reap), failed
dispatches due for retry (retry_dispatch_failed), requests with no envelope at all
(recover), EXPIRED envelopes (cancel_orphaned), OPEN responses never applied
(recover) and late answers about cancelled bookings (sweep).
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from agnt_jobs.demo.seeders import Plan, in_chunks, next_id, seeder, weighted

REQUESTED_ENVELOPE = weighted(
    {"'PENDING'": 40, "'DISPATCH_FAILED'": 30, "NULL": 20, "'EXPIRED'": 10}, "r1"
)

ENVELOPES = f"""
INSERT INTO a2a_envelopes (booking_id, venue_id, kind, payload, status, attempts,
                           next_attempt_at, expires_at, last_error, created_at,
                           status_changed_at, dispatched_at)
SELECT b.id, b.venue_id, 'booking_request',
       jsonb_build_object('booking_id', b.id, 'slot_start', b.slot_start,
                          'slot_end', b.slot_end, 'party_size', b.party_size),
       e.status,
       CASE e.status WHEN 'PENDING' THEN 0
                     WHEN 'DISPATCH_FAILED' THEN 1 + floor(r2 * 4)::int
                     WHEN 'EXPIRED' THEN CASE WHEN r2 < 0.5 THEN 5 ELSE 0 END
                     ELSE 1 END,
       CASE WHEN e.status = 'DISPATCH_FAILED'
            THEN :at - interval '30 minutes' + r3 * interval '90 minutes' END,
       b.created_at + interval '60 minutes',
       CASE WHEN e.status = 'DISPATCH_FAILED' OR (e.status = 'EXPIRED' AND r2 < 0.5)
                THEN 'POST venue agent: HTTP 503 busy'
            WHEN e.status = 'EXPIRED'
                THEN 'TTL passed before the envelope was dispatched' END,
       b.created_at,
       CASE WHEN e.status IN ('RESPONDED', 'DELIVERED') THEN b.status_changed_at
            ELSE b.created_at + interval '1 minute' END,
       CASE WHEN e.status IN ('DISPATCHED', 'DELIVERED', 'RESPONDED')
            THEN b.created_at + interval '2 seconds' END
FROM bookings AS b
CROSS JOIN LATERAL (
    SELECT pg_temp.rnd(b.id, 401) AS r1, pg_temp.rnd(b.id, 402) AS r2,
           pg_temp.rnd(b.id, 403) AS r3
) AS r
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN b.status = 'REQUESTED' THEN {REQUESTED_ENVELOPE}
        WHEN b.status = 'PENDING_VENUE'
            THEN CASE WHEN r1 < 0.6 THEN 'DISPATCHED' ELSE 'DELIVERED' END
        WHEN b.cancelled_reason = 'envelope_expired' THEN 'EXPIRED'
        WHEN b.cancelled_reason = 'no_envelope' THEN NULL
        WHEN b.status = 'CANCELLED'
            THEN CASE WHEN r1 < 0.6 THEN 'RESPONDED' ELSE 'DELIVERED' END
        WHEN b.auto_confirmed THEN 'DELIVERED'
        ELSE 'RESPONDED' END AS status
) AS e
WHERE b.id BETWEEN :lo AND :hi AND e.status IS NOT NULL
  AND (b.slot_start >= :at - interval '30 days'
       OR b.status IN ('REQUESTED', 'PENDING_VENUE'))
"""

RESPONSES = """
INSERT INTO venue_responses (envelope_id, booking_id, venue_id, decision, status,
                             close_reason, received_at, resolved_at)
SELECT e.id, b.id, b.venue_id,
       CASE WHEN b.status = 'DECLINED' THEN 'DECLINE' ELSE 'ACCEPT' END, 'APPLIED',
       NULL, e.status_changed_at - interval '1 minute', e.status_changed_at
FROM a2a_envelopes AS e JOIN bookings AS b ON b.id = e.booking_id
WHERE e.id BETWEEN :lo AND :hi AND e.status = 'RESPONDED'
UNION ALL
-- Answers to waiting requests that were never applied; recovery takes the older.
SELECT e.id, b.id, b.venue_id,
       CASE WHEN pg_temp.rnd(e.id, 411) < 0.85 THEN 'ACCEPT' ELSE 'DECLINE' END,
       'OPEN', NULL, :at - pg_temp.rnd(e.id, 412) * interval '40 minutes', NULL
FROM a2a_envelopes AS e JOIN bookings AS b ON b.id = e.booking_id
WHERE e.id BETWEEN :lo AND :hi AND b.status = 'PENDING_VENUE'
  AND pg_temp.rnd(e.id, 413) < 0.15
UNION ALL
-- Late answers about bookings the user had already cancelled.
SELECT e.id, b.id, b.venue_id, 'ACCEPT',
       CASE WHEN b.status_changed_at < :at - interval '1 day' THEN 'CLOSED'
            ELSE 'OPEN' END,
       CASE WHEN b.status_changed_at < :at - interval '1 day' THEN 'orphaned' END,
       b.status_changed_at + interval '20 minutes',
       CASE WHEN b.status_changed_at < :at - interval '1 day'
            THEN b.status_changed_at + interval '50 minutes' END
FROM a2a_envelopes AS e JOIN bookings AS b ON b.id = e.booking_id
WHERE e.id BETWEEN :lo AND :hi AND b.status = 'CANCELLED'
  AND b.status_changed_at + interval '20 minutes' <= :at
  AND pg_temp.rnd(e.id, 414) < 0.03
"""


@seeder("a2a", tables=("a2a_envelopes", "venue_responses"), after=("bookings",))
def fill(connection: Connection, plan: Plan) -> dict[str, int]:
    bookings = plan.ranges["bookings"]
    first = next_id(connection, "a2a_envelopes")
    envelopes = in_chunks(connection, plan, ENVELOPES, *bookings)
    last = next_id(connection, "a2a_envelopes") - 1
    plan.ranges["a2a_envelopes"] = (first, last)
    responses = in_chunks(connection, plan, RESPONSES, first, last)
    return {"a2a_envelopes": envelopes, "venue_responses": responses}
