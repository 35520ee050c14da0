"""Demo data for what users log with their agent: a month of spending for one user
in five, a week of meals for one in ten (most with a calorie goal), at the WITA hours
people pay and eat, up to the anchor instant, so that today's and yesterday's
digests have something to say."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from agnt_jobs.demo.seeders import Plan, in_chunks, pick, seeder, weighted

SPEND_DAYS = 30
MEAL_DAYS = 7
CATEGORIES = ("food", "transport", "groceries", "nightlife", "wellness", "shopping")
PURCHASES = (
    "lunch", "dinner", "coffee", "scooter rental", "Grab ride", "surf lesson",
    "massage", "smoothie bowl", "beers", "sarong", "SIM top-up", "laundry",
)  # fmt: skip
MEALS = (
    "nasi goreng", "mie goreng", "babi guling", "gado-gado", "sate ayam",
    "smoothie bowl", "avocado toast", "nasi campur", "pisang goreng", "salad",
)  # fmt: skip
CURRENCY = weighted({"'IDR'": 95, "'USD'": 5}, "r1")

# One row per (tracker, day): keys user_id * 64 + day keep each draw its own.
SPEND = f"""
INSERT INTO user_spend_entries (user_id, venue_id, amount, currency, category,
                                description, spent_at, created_at)
SELECT u, CASE WHEN r2 < 0.4
               THEN :venues_first + floor(r3 * :venues_count)::bigint END,
       CASE WHEN currency = 'IDR'
            THEN round((10000 + power(r4, 2) * 490000) / 1000) * 1000
            ELSE round((3 + r4 * 77)::numeric, 2) END,
       currency, {pick(CATEGORIES, "r5")}, {pick(PURCHASES, "r6")},
       spent_at, spent_at + r7 * interval '10 minutes'
FROM generate_series(CAST(:lo AS bigint), :hi) AS u
CROSS JOIN generate_series(0, {SPEND_DAYS - 1}) AS d
CROSS JOIN LATERAL (
    SELECT pg_temp.rnd(u * 64 + d, 501) AS r0, pg_temp.rnd(u * 64 + d, 502) AS r1,
           pg_temp.rnd(u * 64 + d, 503) AS r2, pg_temp.rnd(u * 64 + d, 504) AS r3,
           pg_temp.rnd(u * 64 + d, 505) AS r4, pg_temp.rnd(u * 64 + d, 506) AS r5,
           pg_temp.rnd(u * 64 + d, 507) AS r6, pg_temp.rnd(u * 64 + d, 508) AS r7,
           pg_temp.rnd(u * 64 + d, 509) AS r8
) AS r
CROSS JOIN LATERAL (
    SELECT {CURRENCY} AS currency,
           ((CAST(:at AS timestamptz) AT TIME ZONE :tz)::date - d
            + make_time(7 + floor(r8 * 15)::int, floor(r7 * 60)::int, 0))
           AT TIME ZONE :tz AS spent_at
) AS c
WHERE pg_temp.rnd(u, 510) < 0.2 AND r0 < 0.6 AND c.spent_at <= :at
"""

# Breakfast, lunch, dinner and a snack, each eaten on some days only.
MEAL_HOURS = "(ARRAY[7, 12, 19, 16])"
MEALS_SQL = f"""
INSERT INTO nutrition_entries (user_id, eaten_at, description, calories, created_at)
SELECT u, eaten_at, {pick(MEALS, "r2")}, 150 + floor(r3 * 750)::int,
       eaten_at + interval '5 minutes'
FROM generate_series(CAST(:lo AS bigint), :hi) AS u
CROSS JOIN generate_series(0, {MEAL_DAYS - 1}) AS d
CROSS JOIN generate_series(1, 4) AS meal
CROSS JOIN LATERAL (
    SELECT pg_temp.rnd(u * 64 + d * 4 + meal, 521) AS r1,
           pg_temp.rnd(u * 64 + d * 4 + meal, 522) AS r2,
           pg_temp.rnd(u * 64 + d * 4 + meal, 523) AS r3,
           pg_temp.rnd(u * 64 + d * 4 + meal, 524) AS r4
) AS r
CROSS JOIN LATERAL (
    SELECT ((CAST(:at AS timestamptz) AT TIME ZONE :tz)::date - d
            + make_time({MEAL_HOURS}[meal] + floor(r4 * 2)::int,
                        floor(r1 * 60)::int, 0))
           AT TIME ZONE :tz AS eaten_at
) AS e
WHERE pg_temp.rnd(u, 520) < 0.1 AND r1 < CASE WHEN meal = 4 THEN 0.3 ELSE 0.85 END
  AND e.eaten_at <= :at
"""

GOALS = """
INSERT INTO calorie_goals (user_id, daily_calories, updated_at)
SELECT u, 1500 + 100 * floor(pg_temp.rnd(u, 531) * 14)::int,
       :at - pg_temp.rnd(u, 532) * interval '60 days'
FROM generate_series(CAST(:lo AS bigint), :hi) AS u
WHERE pg_temp.rnd(u, 520) < 0.1 AND pg_temp.rnd(u, 533) < 0.7
ON CONFLICT (user_id) DO NOTHING
"""


@seeder(
    "diary",
    tables=("user_spend_entries", "nutrition_entries", "calorie_goals"),
    after=("core",),
)
def fill(connection: Connection, plan: Plan) -> dict[str, int]:
    users = plan.ranges["users"]
    # A chunk of users makes up to 30 (spend) or 28 (meals) rows each.
    per_chunk = max(plan.chunk // 30, 1)
    return {
        "user_spend_entries": in_chunks(
            connection, plan, SPEND, *users, chunk=per_chunk
        ),
        "nutrition_entries": in_chunks(
            connection, plan, MEALS_SQL, *users, chunk=per_chunk
        ),
        "calorie_goals": in_chunks(connection, plan, GOALS, *users),
    }
