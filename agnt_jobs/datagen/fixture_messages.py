"""Benchmark data for the messaging jobs that are not about one booking: the send
queue's retries and the users' daily digests.

Background, proportional to the scale: spend and nutrition entries of days before
yesterday (WITA), and a calorie goal for every third user. Due work, ``:http_due``
rows each (each is a message through the gateway): FAILED messages due for a
retry and PENDING ones stranded by a crashed job (retry_failed_sends); users who
spent yesterday (spend_digest) and ate today before ``:at``
(daily_nutrition_summary). ``:day_start`` and ``:yesterday_start`` are the WITA
days of ``:at``; users are reachable ones, as in ``fixture_bookings``.
"""

from __future__ import annotations

from agnt_jobs.datagen.fixture_bookings import USER, ago

AT = "CAST(:at AS timestamptz)"

# retry_failed_sends: messages the gateway failed, due again a minute ago; and as
# many PENDING ones stranded ten minutes ago by a job that crashed before sending
# (of a kind no other job delivers).
SENDS = f"""
INSERT INTO send_queue (idempotency_key, kind, user_id, channel, recipient, body,
                        status, attempts, next_attempt_at, last_error, created_at)
SELECT 'bench-retry:' || g, 'booking_update', u.id, u.channel, u.channel_address,
       'Your table has moved to 20:00.',
       CASE WHEN g <= :http_due THEN 'FAILED' ELSE 'PENDING' END,
       CASE WHEN g <= :http_due THEN 2 ELSE 0 END,
       CASE WHEN g <= :http_due THEN {ago("1 minute")} ELSE {ago("10 minutes")} END,
       CASE WHEN g <= :http_due THEN 'gateway answered 503' END,
       CASE WHEN g <= :http_due THEN {ago("1 hour")} ELSE {ago("10 minutes")} END
FROM generate_series(1, 2 * :http_due) g JOIN users AS u ON u.id = {USER}
"""

# spend_digest: the background spent before yesterday; :http_due users spent three
# times yesterday, once in another currency.
SPEND = f"""
INSERT INTO user_spend_entries (user_id, venue_id, amount, currency, category,
                                description, spent_at)
SELECT 1 + g % :users, 1 + g % :venues, 50000 + (g % 40) * 2500, 'IDR', 'dining',
       'Dinner', CAST(:yesterday_start AS timestamptz) - interval '1 hour'
                 - (g % 28) * interval '1 day'
FROM generate_series(1, 2000 * :scale) g
UNION ALL
SELECT {USER}, 1 + g % :venues, CASE WHEN k = 2 THEN 12.50 ELSE 85000 END,
       CASE WHEN k = 2 THEN 'USD' ELSE 'IDR' END, 'dining', 'Lunch',
       CAST(:yesterday_start AS timestamptz) + interval '9 hours'
       + k * interval '3 hours'
FROM generate_series(1, :http_due) g, generate_series(0, 2) k
"""

# daily_nutrition_summary: the background ate before yesterday; :http_due users
# logged three meals today before :at. A third of all users have a goal.
NUTRITION = f"""
INSERT INTO nutrition_entries (user_id, eaten_at, description, calories)
SELECT 1 + g % :users,
       CAST(:yesterday_start AS timestamptz) - interval '1 hour'
       - (g % 28) * interval '1 day', 'Nasi goreng', 450 + g % 300
FROM generate_series(1, 2000 * :scale) g
UNION ALL
SELECT {USER},
       CAST(:day_start AS timestamptz)
       + ({AT} - CAST(:day_start AS timestamptz)) * (k + 1) / 4,
       'Gado-gado', 400 + (g + k) % 500
FROM generate_series(1, :http_due) g, generate_series(0, 2) k
"""

GOALS = """
INSERT INTO calorie_goals (user_id, daily_calories)
SELECT g, 1500 + g % 1000 FROM generate_series(3, :users, 3) g
"""

STATEMENTS: list[tuple[str, str]] = [
    ("send_queue_due", SENDS),
    ("diaries", SPEND),
    ("diaries", NUTRITION),
    ("diaries", GOALS),
]
