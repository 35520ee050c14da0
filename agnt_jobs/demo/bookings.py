"""Demo data for bookings and what follows them: reminders, rating prompts, ratings.

Per scale unit: 10,000 bookings over the last 180 days and the next 14, at WITA
business hours (lunch and dinner peaks, 15-minute slots), popular venues and regular
guests drawn more often. Past bookings are mostly COMPLETED, with cancellations and
declines; a few CONFIRMED ones still wait for mark_completed_bookings and a few
waiting ones were never answered. Upcoming ones are mostly CONFIRMED, some still
waiting on the venue (some for hours: auto-confirm's work). Reminders and prompts
exist where the jobs would have made them, with the newest left for the jobs to do.
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

BOOKINGS_PER_SCALE = 10_000

# Lunch and dinner peaks, afternoon spa and café slots, late bars: a WITA hour
# drawn uniformly from this list.
HOURS = "(ARRAY[10,11,12,12,13,13,14,15,16,17,18,18,19,19,19,20,20,20,21,21,22])"
NOTES = ("window seat please", "birthday", "vegetarian", "high chair", "sunset view")
COMMENTS = (
    "Lovely staff, will come back.", "Great food, slow service.", "Perfect sunset.",
    "A bit noisy but worth it.", "Best nasi campur in town.", "Table was not ready.",
)  # fmt: skip

PAST_STATUS = weighted(
    {
        "'COMPLETED'": 78,
        "'CANCELLED'": 12,
        "'DECLINED'": 6,
        "'CONFIRMED'": 3,  # ended, not yet marked COMPLETED
        "'PENDING_VENUE'": 0.5,  # the venue never answered
        "'REQUESTED'": 0.5,
    },
    "r10",
)
FUTURE_STATUS = weighted(
    {
        "'CONFIRMED'": 70,
        "'PENDING_VENUE'": 12,
        "'REQUESTED'": 5,
        "'CANCELLED'": 10,
        "'DECLINED'": 3,
    },
    "r10",
)
CANCEL_REASON = weighted(
    {
        "'user_cancelled'": 80,
        "'venue_cancelled'": 10,
        "'envelope_expired'": 5,
        "'no_envelope'": 5,
    },
    "r13",
)
PARTY = weighted({"1": 10, "2": 45, "3": 12, "4": 18, "5": 5, "6": 6, "8": 4}, "r14")
SCORE = weighted({"5": 45, "4": 33, "3": 12, "2": 6, "1": 4}, "pg_temp.rnd(b.id, 371)")

BOOKINGS = f"""
INSERT INTO bookings (id, user_id, venue_id, status, slot_start, slot_end, party_size,
                      notes, created_at, status_changed_at, auto_confirmed,
                      cancelled_reason)
SELECT id, user_id, venue_id, status, slot_start, slot_end, {PARTY},
       CASE WHEN r15 < 0.05 THEN {pick(NOTES, "r12")} END,
       created, changed,
       status IN ('CONFIRMED', 'COMPLETED') AND r12 < 0.04,
       CASE WHEN status = 'CANCELLED' THEN {CANCEL_REASON} END
FROM generate_series(CAST(:lo AS bigint), :hi) AS id
CROSS JOIN LATERAL (
    SELECT pg_temp.rnd(id, 301) AS r1, pg_temp.rnd(id, 302) AS r2,
           pg_temp.rnd(id, 303) AS r3, pg_temp.rnd(id, 304) AS r4,
           pg_temp.rnd(id, 305) AS r5, pg_temp.rnd(id, 306) AS r6,
           pg_temp.rnd(id, 307) AS r7, pg_temp.rnd(id, 308) AS r8,
           pg_temp.rnd(id, 309) AS r9, pg_temp.rnd(id, 310) AS r10,
           pg_temp.rnd(id, 311) AS r11, pg_temp.rnd(id, 312) AS r12,
           pg_temp.rnd(id, 313) AS r13, pg_temp.rnd(id, 314) AS r14,
           pg_temp.rnd(id, 315) AS r15
) AS r
CROSS JOIN LATERAL (
    SELECT :users_first + floor(power(r1, 1.5) * :users_count)::bigint AS user_id,
           :venues_first + floor(power(r2, 1.8) * :venues_count)::bigint AS venue_id,
           ((CAST(:at AS timestamptz) AT TIME ZONE :tz)::date
            + CASE WHEN r3 < 0.9 THEN -1 - floor(r4 * 180)::int
                   ELSE floor(r4 * 14)::int END
            + make_time({HOURS}[1 + floor(r5 * 21)::int], 15 * floor(r6 * 4)::int, 0)
           ) AT TIME ZONE :tz AS slot_start,
           make_interval(mins => 60 + 30 * floor(r7 * 4)::int) AS length
) AS s
CROSS JOIN LATERAL (
    SELECT s.slot_start + s.length AS slot_end,
           least(s.slot_start - interval '1 hour' - r8 * interval '13 days',
                 CAST(:at AS timestamptz) - r9 * interval '1 hour') AS created,
           CASE WHEN s.slot_start + s.length <= :at THEN {PAST_STATUS}
                ELSE {FUTURE_STATUS} END AS status
) AS t
CROSS JOIN LATERAL (
    SELECT CASE t.status
        WHEN 'COMPLETED' THEN least(t.slot_end + r11 * interval '45 minutes', :at)
        WHEN 'CONFIRMED'
            THEN least(t.created + interval '5 minutes' + r11 * interval '2 hours', :at)
        WHEN 'DECLINED'
            THEN least(t.created + interval '9 minutes' + r11 * interval '3 hours', :at)
        WHEN 'CANCELLED' THEN least(t.created + r11 * (s.slot_start - t.created), :at)
        WHEN 'PENDING_VENUE' THEN CASE WHEN t.slot_end <= :at
            THEN t.created + interval '2 minutes'
            ELSE greatest(t.created, :at - r11 * interval '5 hours') END
        ELSE CASE WHEN t.slot_end <= :at THEN t.created
            ELSE greatest(t.created, :at - r11 * interval '70 minutes') END
    END AS changed
) AS c
"""

# Reminders the job made in the last 30 days, and PENDING ones for half of the
# slots in the next 24 hours (the other half is booking_reminders' work).
REMINDERS = """
INSERT INTO reminders (booking_id, due_at, status, skip_reason, created_at,
                       processed_at)
SELECT b.id, d.due, d.status, d.reason, m.made,
       CASE WHEN d.status <> 'PENDING' THEN d.due END
FROM bookings AS b
CROSS JOIN LATERAL (
    SELECT greatest(b.created_at, least(b.slot_start - interval '24 hours', :at))
           AS made,
           pg_temp.rnd(b.id, 351) AS r1
) AS m
CROSS JOIN LATERAL (
    SELECT greatest(b.slot_start - interval '2 hours', m.made) AS due,
           CASE WHEN b.slot_start > :at THEN 'PENDING'
                WHEN b.status = 'CANCELLED' THEN 'SKIPPED'
                WHEN m.r1 < 0.03 THEN 'SKIPPED'
                ELSE 'SENT' END AS status,
           CASE WHEN b.slot_start > :at THEN NULL
                WHEN b.status = 'CANCELLED' THEN 'cancelled'
                WHEN m.r1 < 0.03 THEN 'unreachable' END AS reason
) AS d
WHERE b.id BETWEEN :lo AND :hi
  AND b.slot_start BETWEEN :at - interval '30 days' AND :at + interval '24 hours'
  AND (b.status IN ('CONFIRMED', 'COMPLETED')
       OR (b.status = 'CANCELLED' AND pg_temp.rnd(b.id, 352) < 0.2))
  AND NOT (b.slot_start > :at AND pg_temp.rnd(b.id, 353) < 0.5)
"""

# Prompts for most visits that ended more than two days ago and some recent ones;
# the rest of the recent ones are rating_prompt's work.
RATING_PROMPTS = """
INSERT INTO rating_prompts (booking_id, prompted_at)
SELECT b.id,
       b.slot_end + interval '2 hours' + pg_temp.rnd(b.id, 361) * interval '1 hour'
FROM bookings AS b
WHERE b.id BETWEEN :lo AND :hi AND b.status = 'COMPLETED'
  AND b.slot_end + interval '3 hours' <= :at
  AND pg_temp.rnd(b.id, 362)
      < CASE WHEN b.slot_end < :at - interval '48 hours' THEN 0.75 ELSE 0.3 END
"""

RATINGS = f"""
INSERT INTO ratings (booking_id, user_id, venue_id, score, comment, created_at)
SELECT b.id, b.user_id, b.venue_id, {SCORE},
       CASE WHEN pg_temp.rnd(b.id, 372) < 0.3
            THEN {pick(COMMENTS, "pg_temp.rnd(b.id, 373)")} END,
       least(p.prompted_at + pg_temp.rnd(b.id, 374) * interval '24 hours', :at)
FROM rating_prompts AS p JOIN bookings AS b ON b.id = p.booking_id
WHERE p.booking_id BETWEEN :lo AND :hi AND b.user_id IS NOT NULL
  AND pg_temp.rnd(b.id, 375) < 0.47
"""


TABLES = ("bookings", "reminders", "rating_prompts", "ratings")


@seeder("bookings", tables=TABLES, after=("core",))
def fill(connection: Connection, plan: Plan) -> dict[str, int]:
    first = next_id(connection, "bookings")
    last = first + BOOKINGS_PER_SCALE * plan.scale - 1
    counts = {"bookings": in_chunks(connection, plan, BOOKINGS, first, last)}
    sync_identity(connection, "bookings")
    plan.ranges["bookings"] = (first, last)
    for table, statement in (
        ("reminders", REMINDERS),
        ("rating_prompts", RATING_PROMPTS),
        ("ratings", RATINGS),
    ):
        counts[table] = in_chunks(connection, plan, statement, first, last)
    return counts
