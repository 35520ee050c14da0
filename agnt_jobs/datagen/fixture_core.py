"""Benchmark data for the core tables and the lifecycle jobs: users, venues and their
subscriptions, bookings, the send queue, onboarding sessions and referral codes.

Ids ``1..:users`` are ordinary users; ``:users + 1 .. :users + :due`` were
soft-deleted 45 days ago (due for ``purge_deleted_users``, with three bookings and
a waiting message each). Venue ``g`` is claimed by user ``10 g + 1`` unless ``g``
is a multiple of 4, suspended when a multiple of 9, and its subscription is live
unless ``g`` is a multiple of 5; the first ``:drift`` venues have a wrong
``is_claimed``. Times are relative to ``:at``.
"""

from __future__ import annotations

CATEGORIES = "ARRAY['Japanese', 'Italian', 'spa', 'bar', 'beach club', 'cafe', 'yoga']"

USERS = """
INSERT INTO users (id, display_name, email, phone, channel, channel_address,
                   created_at, last_active_at, notifications_opt_in,
                   marketing_opt_in, deleted_at)
SELECT g, 'Guest ' || g, 'guest' || g || '@example.test',
       '+62812' || lpad(g::text, 8, '0'),
       (ARRAY['whatsapp', 'telegram', 'web', 'email'])[1 + g % 4], 'addr-' || g,
       CAST(:at AS timestamptz) - interval '400 days' + (g % 365) * interval '1 day',
       CAST(:at AS timestamptz) - (g % 90) * interval '1 day' - interval '1 hour',
       g % 10 <> 0, g % 3 = 0,
       CASE WHEN g > :users THEN CAST(:at AS timestamptz) - interval '45 days'
            -- deleted recently: still within retention, never purged
            WHEN g % 100 = 50 THEN CAST(:at AS timestamptz) - interval '3 days'
       END
FROM generate_series(1, :users + :due) g
"""

VENUES = f"""
INSERT INTO venues (id, name, category, owner_user_id, agent_endpoint, is_claimed,
                    is_active, suspended_at, created_at)
SELECT g, 'Venue ' || g, ({CATEGORIES})[1 + g % 7],
       CASE WHEN g % 4 <> 0 THEN g * 10 + 1 END,
       :peer || '/venues/' || g || '/a2a',
       (g % 4 <> 0) <> (g <= :drift),
       g % 4 <> 0 AND g % 9 <> 0 AND g % 5 <> 0,
       CASE WHEN g % 9 = 0 THEN CAST(:at AS timestamptz) - interval '20 days' END,
       CAST(:at AS timestamptz) - interval '500 days'
FROM generate_series(1, :venues) g
"""

SUBSCRIPTIONS = """
INSERT INTO subscriptions (venue_id, stripe_customer_id, status, current_period_end,
                           created_at)
SELECT g, 'cus_bench_' || g,
       CASE WHEN g % 5 = 0 THEN 'canceled' ELSE 'active' END,
       CAST(:at AS timestamptz) + (g % 28) * interval '1 day',
       CAST(:at AS timestamptz) - interval '300 days'
FROM generate_series(1, :venues) g
WHERE g % 4 <> 0
"""

# Slots spread over the last 180 days and the next 14; the past ones mostly
# COMPLETED, the future ones CONFIRMED. The first 3 * :due belong to the users due
# for purging.
BOOKINGS = """
INSERT INTO bookings (id, user_id, venue_id, status, slot_start, slot_end, party_size,
                      guest_name, notes, created_at, status_changed_at)
SELECT g, u, 1 + g % :venues,
       CASE WHEN s >= CAST(:at AS timestamptz) THEN 'CONFIRMED'
            WHEN g % 7 = 0 THEN 'CANCELLED' ELSE 'COMPLETED' END,
       s, s + interval '2 hours', 1 + g % 6, 'Guest ' || u,
       CASE WHEN g % 3 = 0 THEN 'window seat' END,
       s - interval '3 days', s - interval '1 day'
FROM (
    SELECT g,
           CASE WHEN g <= 3 * :due THEN :users + 1 + (g - 1) % :due
                ELSE 1 + g % :users END AS u,
           CAST(:at AS timestamptz) - interval '180 days'
               + ((g::bigint * 7919) % 1000) * interval '279.36 minutes' AS s
    FROM generate_series(1, greatest(:bookings, 3 * :due)) g
) b
"""

SEND_QUEUE = """
INSERT INTO send_queue (idempotency_key, kind, user_id, channel, recipient, body,
                        status, attempts, next_attempt_at, created_at, sent_at)
SELECT 'bench:' || g, 'reminder', u, 'whatsapp', '+62812' || lpad(u::text, 8, '0'),
       'Your table is booked for tonight.',
       CASE WHEN g <= :due THEN 'PENDING' ELSE 'SENT' END,
       CASE WHEN g <= :due THEN 0 ELSE 1 END,
       -- the waiting ones are not due yet: only the purge touches them
       CASE WHEN g <= :due THEN CAST(:at AS timestamptz) + interval '1 day'
            ELSE CAST(:at AS timestamptz) - interval '2 days' END,
       CAST(:at AS timestamptz) - interval '2 days',
       CASE WHEN g > :due THEN CAST(:at AS timestamptz) - interval '2 days' END
FROM (
    SELECT g, CASE WHEN g <= :due THEN :users + g ELSE 1 + g % :users END AS u
    FROM generate_series(1, 1000 * :scale + :due) g
) m
"""

# 1..:due abandoned and expired ten days ago (b2b_session_cleanup); the next :due
# active but idle for three days (mark_abandoned_b2b_sessions); the rest completed,
# or active and busy.
SESSIONS = """
INSERT INTO b2b_onboarding_sessions (user_id, status, step, created_at,
                                     last_activity_at, expires_at, completed_at,
                                     abandoned_at)
SELECT 1 + g % :users,
       CASE WHEN g <= :due THEN 'ABANDONED' WHEN g <= 2 * :due THEN 'ACTIVE'
            WHEN g % 2 = 0 THEN 'COMPLETED' ELSE 'ACTIVE' END,
       'details',
       CAST(:at AS timestamptz) - interval '30 days',
       CASE WHEN g <= :due THEN CAST(:at AS timestamptz) - interval '20 days'
            WHEN g <= 2 * :due THEN CAST(:at AS timestamptz) - interval '3 days'
            ELSE CAST(:at AS timestamptz) - interval '1 hour' END,
       CASE WHEN g <= :due THEN CAST(:at AS timestamptz) - interval '10 days'
            WHEN g % 2 = 0 AND g > 2 * :due
                THEN CAST(:at AS timestamptz) - interval '60 days'
            ELSE CAST(:at AS timestamptz) + interval '5 days' END,
       CASE WHEN g > 2 * :due AND g % 2 = 0
            THEN CAST(:at AS timestamptz) - interval '25 days' END,
       CASE WHEN g <= :due THEN CAST(:at AS timestamptz) - interval '18 days' END
FROM generate_series(1, 200 * :scale + 2 * :due) g
"""

REFERRALS = """
INSERT INTO referral_codes (code, referrer_user_id, status, created_at, expires_at,
                            redeemed_at, redeemed_by_user_id)
SELECT 'REF' || g, 1 + g % :users,
       CASE WHEN g > :due AND g % 2 = 0 THEN 'REDEEMED' ELSE 'ACTIVE' END,
       CAST(:at AS timestamptz) - interval '40 days',
       CASE WHEN g <= :due THEN CAST(:at AS timestamptz) - interval '1 day'
            WHEN g % 2 = 0 THEN CAST(:at AS timestamptz) - interval '5 days'
            ELSE CAST(:at AS timestamptz) + interval '20 days' END,
       CASE WHEN g > :due AND g % 2 = 0
            THEN CAST(:at AS timestamptz) - interval '10 days' END,
       CASE WHEN g > :due AND g % 2 = 0 THEN 1 + (g + 1) % :users END
FROM generate_series(1, 1000 * :scale + :due) g
"""

STATEMENTS: list[tuple[str, str]] = [
    ("users", USERS),
    ("venues", VENUES),
    ("subscriptions", SUBSCRIPTIONS),
    ("bookings", BOOKINGS),
    ("send_queue", SEND_QUEUE),
    ("b2b_sessions", SESSIONS),
    ("referral_codes", REFERRALS),
]
