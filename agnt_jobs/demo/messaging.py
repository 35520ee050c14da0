"""Demo data for the send queue, the dead-letter queue and re-engagement nudges.

The send queue holds the last week of reminders and rating prompts: nearly all SENT,
some FAILED and due for retry, a few DEAD (each with a dead letter) and a few left
PENDING by a "crashed" job. Dead letters also record envelopes whose dispatch gave
up; some are resolved, some of those long enough ago for dlq_cleanup. Lapsed users
who take marketing were partly nudged in past weeks.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from agnt_jobs.demo.seeders import Plan, in_chunks, next_id, seeder, weighted

SEND_STATUS = weighted(
    {"'SENT'": 97.2, "'FAILED'": 2, "'DEAD'": 0.5, "'PENDING'": 0.3},
    "pg_temp.rnd(m.booking_id, 451)",
)

SENT_MESSAGES = f"""
INSERT INTO send_queue (idempotency_key, kind, user_id, channel, recipient, body,
                        status, attempts, next_attempt_at, last_error,
                        gateway_message_id, created_at, sent_at)
SELECT m.kind_prefix || m.booking_id, m.kind, u.id, u.channel, u.channel_address,
       m.body, s.status,
       CASE s.status WHEN 'SENT' THEN 1 WHEN 'PENDING' THEN 0 WHEN 'DEAD' THEN 5
                     ELSE 1 + floor(pg_temp.rnd(m.booking_id, 452) * 3)::int END,
       CASE WHEN s.status = 'FAILED'
            THEN :at - interval '45 minutes'
                 + pg_temp.rnd(m.booking_id, 453) * interval '1 hour'
            ELSE m.at END,
       CASE WHEN s.status IN ('FAILED', 'DEAD')
            THEN 'POST /messages: HTTP 503 gateway unavailable' END,
       CASE WHEN s.status = 'SENT' THEN 'gw-' || m.kind_prefix || m.booking_id END,
       m.at,
       CASE WHEN s.status = 'SENT' THEN m.at + interval '2 seconds' END
FROM (
    SELECT r.booking_id, 'reminder:' AS kind_prefix, 'booking_reminder' AS kind,
           r.processed_at AS at,
           format('Reminder: your booking at %s is on %s for %s.', v.name,
                  to_char(b.slot_start AT TIME ZONE :tz, 'Dy DD Mon HH24:MI'),
                  b.party_size) AS body
    FROM reminders AS r
    JOIN bookings AS b ON b.id = r.booking_id JOIN venues AS v ON v.id = b.venue_id
    WHERE r.booking_id BETWEEN :lo AND :hi AND r.status = 'SENT'
      AND r.processed_at >= :at - interval '7 days'
    UNION ALL
    SELECT p.booking_id, 'rating_prompt:', 'rating_prompt', p.prompted_at,
           format('How was %s? Reply with 1 to 5 stars.', v.name)
    FROM rating_prompts AS p
    JOIN bookings AS b ON b.id = p.booking_id JOIN venues AS v ON v.id = b.venue_id
    WHERE p.booking_id BETWEEN :lo AND :hi
      AND p.prompted_at >= :at - interval '7 days'
) AS m
JOIN bookings AS b ON b.id = m.booking_id
JOIN users AS u ON u.id = b.user_id
CROSS JOIN LATERAL (SELECT {SEND_STATUS} AS status) AS s
WHERE u.channel_address IS NOT NULL
ON CONFLICT (idempotency_key) DO NOTHING
"""

DEAD_LETTERS = """
INSERT INTO dead_letters (source, source_id, error_class, error, payload, attempts,
                          created_at, resolved_at, resolution)
SELECT source, source_id, 'exhausted', error, payload, attempts, failed_at,
       CASE WHEN pg_temp.rnd(id, 461) < 0.4
            THEN least(failed_at + pg_temp.rnd(id, 462) * interval '20 days', :at) END,
       CASE WHEN pg_temp.rnd(id, 461) < 0.4 THEN 'replayed by an operator' END
FROM (
    SELECT id, 'send_queue' AS source, id::text AS source_id, last_error AS error,
           jsonb_build_object('idempotency_key', idempotency_key) AS payload,
           attempts, created_at + interval '3 hours' AS failed_at
    FROM send_queue
    WHERE id BETWEEN :lo AND :hi AND status = 'DEAD'
) AS failures
"""

ENVELOPE_LETTERS = """
INSERT INTO dead_letters (source, source_id, error_class, error, payload, attempts,
                          created_at, resolved_at, resolution)
SELECT 'a2a_dispatch', e.id::text, 'exhausted', e.last_error,
       jsonb_build_object('booking_id', e.booking_id, 'venue_id', e.venue_id),
       e.attempts, e.status_changed_at,
       CASE WHEN pg_temp.rnd(e.id, 471) < 0.4
            THEN least(e.status_changed_at + interval '2 days', :at) END,
       CASE WHEN pg_temp.rnd(e.id, 471) < 0.4 THEN 'venue agent fixed' END
FROM a2a_envelopes AS e
WHERE e.id BETWEEN :lo AND :hi AND e.status = 'EXPIRED' AND e.attempts >= 5
"""

NUDGES = """
INSERT INTO user_nudges (user_id, iso_week, nudged_at)
SELECT u.id, to_char(n.at AT TIME ZONE :tz, 'IYYY-"W"IW'), n.at
FROM users AS u
CROSS JOIN LATERAL (
    SELECT :at - interval '7 days' * (1 + floor(pg_temp.rnd(u.id, 481) * 9))
           - pg_temp.rnd(u.id, 482) * interval '3 hours' AS at
) AS n
WHERE u.id BETWEEN :lo AND :hi AND u.marketing_opt_in
  AND u.last_active_at < :at - interval '14 days'
  AND pg_temp.rnd(u.id, 483) < 0.4
"""


@seeder(
    "messaging",
    tables=("send_queue", "dead_letters", "user_nudges"),
    after=("bookings", "a2a"),
)
def fill(connection: Connection, plan: Plan) -> dict[str, int]:
    first = next_id(connection, "send_queue")
    sent = in_chunks(connection, plan, SENT_MESSAGES, *plan.ranges["bookings"])
    last = next_id(connection, "send_queue") - 1
    letters = in_chunks(connection, plan, DEAD_LETTERS, first, last)
    letters += in_chunks(
        connection, plan, ENVELOPE_LETTERS, *plan.ranges["a2a_envelopes"]
    )
    nudges = in_chunks(connection, plan, NUDGES, *plan.ranges["users"])
    return {"send_queue": sent, "dead_letters": letters, "user_nudges": nudges}
