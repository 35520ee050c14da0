"""Demo data for what the agent remembers and reflects on: memories, the nightly
reflections and the weekly insights.

Memories: the users who talk with the agent have up to eight each, facts,
preferences and plans, some said twice in other words (near-duplicates). Most were
used in the last month; a fifth not for over 90 days (``memory_eviction``'s work);
a few are pinned. Duplicates older than the Monday before last were merged by
deep dreaming then; newer ones wait for the next run.

Reflections: one per user per WITA day they talked with the agent, up to the day
before yesterday. Insights: one per user per ISO week up to the week before last.
The heavy queue is a night behind, as after a worker outage: yesterday's
reflections (``light_dreaming``) and last week's insights (``deep_dreaming``) are
still to be written, from the conversations that are there.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from agnt_jobs.demo.core import PLACES
from agnt_jobs.demo.seeders import (
    LOCAL_TODAY,
    Plan,
    in_chunks,
    local_instant,
    pick,
    seeder,
    sql_array,
)

MEMORIES = (
    ("preference", "Prefers vegetarian food."),
    ("preference", "Likes quiet places with a sunset view."),
    ("fact", "Travels with two kids."),
    ("preference", "Can't eat spicy food."),
    ("fact", "Stays in %place% until the end of the month."),
    ("preference", "Loves live music on weekends."),
    ("fact", "Allergic to peanuts."),
    ("plan", "Wants a birthday dinner for six next month."),
    ("fact", "Rides a scooter and needs parking."),
    ("plan", "Asked to be reminded about the Nyepi closures."),
    ("fact", "Usually books for two at 19:00."),
    ("preference", "Favourite area for dinner: %place%."),
)
TOPICS = (
    "sunset", "vegan", "spa", "surf", "seafood", "live music", "brunch",
    "beach club", "nasi campur", "parking", "booking", "kids",
)  # fmt: skip
PREFERENCES = (
    "I prefer quiet places with a sunset view.", "We are vegetarian.",
    "I can't eat spicy food.", "Saya suka tempat dengan live music.",
)  # fmt: skip
LOOPS = ("Remind me to book a table for Friday.", "I'll check with the venue.")

# The Monday 04:00 WITA run of deep_dreaming before last: memories merged by then.
MERGED_BEFORE = local_instant(
    "date_trunc('week', CAST(:at AS timestamptz) AT TIME ZONE :tz)::date - 7",
    "time '04:00'",
)

MEMORY_ROWS = f"""
INSERT INTO memories (user_id, kind, content, pinned, created_at, last_accessed_at)
SELECT u, ({sql_array([k for k, _ in MEMORIES])})[t.no],
       CASE WHEN pg_temp.rnd(u * 16 + m, 1203) < 0.5 THEN t.text
            ELSE lower(rtrim(t.text, '.')) END,
       pg_temp.rnd(u * 16 + m, 1204) < 0.05, t.created,
       CASE WHEN t.r < 0.55
                THEN greatest(t.created, :at - t.r2 * interval '30 days')
            WHEN t.r < 0.8
                THEN greatest(t.created, :at - interval '30 days'
                                         - t.r2 * interval '60 days')
            WHEN t.r < 0.9 THEN NULL
            ELSE least(:at, t.created + t.r2 * interval '20 days') END
FROM generate_series(CAST(:lo AS bigint), :hi) AS u
CROSS JOIN generate_series(0, 7) AS m
CROSS JOIN LATERAL (
    SELECT 1 + floor(power(pg_temp.rnd(u * 16 + m, 1201), 1.3) * {len(MEMORIES)})::int
               AS no,
           pg_temp.rnd(u * 16 + m, 1205) AS r, pg_temp.rnd(u * 16 + m, 1206) AS r2,
           :at - pg_temp.rnd(u * 16 + m, 1207) * interval '200 days' AS created
) AS t0
CROSS JOIN LATERAL (
    SELECT t0.*,
           replace(({sql_array([text for _, text in MEMORIES])})[t0.no], '%place%',
                   {pick(PLACES, "pg_temp.rnd(u * 16 + m, 1202)")}) AS text
) AS t
-- the users who talk with the agent (conversations.py)
WHERE pg_temp.rnd(u, 1101) < 0.25
  AND m <= floor(pg_temp.rnd(u, 1208) * 8)
ORDER BY u, m
"""

# Deep dreaming's past merges: same user, kind and words; a pinned one survives,
# else the oldest.
MERGES = f"""
WITH grouped AS (
    SELECT id, first_value(id) OVER (
               PARTITION BY user_id, kind, lower(rtrim(content, '.'))
               ORDER BY pinned DESC, created_at, id) AS survivor
    FROM memories
    WHERE user_id BETWEEN :lo AND :hi AND created_at < {MERGED_BEFORE}
)
UPDATE memories AS m SET merged_into_id = g.survivor
FROM grouped AS g
WHERE m.id = g.id AND g.survivor <> g.id
"""

REFLECTIONS = f"""
INSERT INTO reflections (user_id, reflection_date, topics, preferences, open_loops,
                         summary, interaction_count, method, created_at)
SELECT d.user_id, d.day, x.topics,
       CASE WHEN x.r < 0.4
            THEN jsonb_build_array({pick(PREFERENCES, "x.r2")}) ELSE '[]' END,
       CASE WHEN x.r2 < 0.25
            THEN jsonb_build_array({pick(LOOPS, "x.r")}) ELSE '[]' END,
       d.messages || ' messages in ' || d.conversations || ' conversation'
           || CASE WHEN d.conversations > 1 THEN 's' ELSE '' END
           || '. Talked about '
           || (SELECT string_agg(t, ', ') FROM jsonb_array_elements_text(x.topics)
                   AS t) || '.',
       d.messages, 'extractive',
       {local_instant("d.day + 1", "time '02:00:05'")}
FROM (
    SELECT user_id, (created_at AT TIME ZONE :tz)::date AS day, count(*) AS messages,
           count(DISTINCT conversation_id) AS conversations,
           -- one draw per user and day
           user_id * 64
               + ((created_at AT TIME ZONE :tz)::date - date '2020-01-01') AS key
    FROM interactions
    WHERE user_id BETWEEN :lo AND :hi
      AND created_at < ({LOCAL_TODAY} - 1)::timestamp AT TIME ZONE :tz
    GROUP BY 1, 2, 5
) AS d
CROSS JOIN LATERAL (
    SELECT pg_temp.rnd(d.key, 1211) AS r,
           pg_temp.rnd(d.key, 1212) AS r2,
           (SELECT jsonb_agg(DISTINCT t)
            FROM unnest(ARRAY[
                {pick(TOPICS, "pg_temp.rnd(d.key, 1213)")},
                {pick(TOPICS, "pg_temp.rnd(d.key, 1214)")},
                {pick(TOPICS, "pg_temp.rnd(d.user_id, 1215)")}]) AS t) AS topics
) AS x
ORDER BY d.user_id, d.day
"""

# One insight per user and ISO week, up to the week before last.
INSIGHTS = f"""
INSERT INTO agent_insights (user_id, iso_week, week_start, topics, preferences,
                            open_loops, summary, reflection_count, memories_merged,
                            created_at)
WITH weeks AS (
    SELECT user_id, date_trunc('week', reflection_date)::date AS week_start,
           count(*) AS days,
           jsonb_agg(DISTINCT p) FILTER (WHERE p IS NOT NULL) AS preferences,
           jsonb_agg(DISTINCT l) FILTER (WHERE l IS NOT NULL) AS loops
    FROM reflections
    LEFT JOIN LATERAL jsonb_array_elements_text(preferences) AS p ON true
    LEFT JOIN LATERAL jsonb_array_elements_text(open_loops) AS l ON true
    WHERE user_id BETWEEN :lo AND :hi
      AND reflection_date < date_trunc('week', {LOCAL_TODAY})::date - 7
    GROUP BY 1, 2
), topics AS (
    SELECT user_id, date_trunc('week', reflection_date)::date AS week_start, t,
           count(*) AS days
    FROM reflections, jsonb_array_elements_text(topics) AS t
    WHERE user_id BETWEEN :lo AND :hi
      AND reflection_date < date_trunc('week', {LOCAL_TODAY})::date - 7
    GROUP BY 1, 2, 3
)
SELECT w.user_id, to_char(w.week_start, 'IYYY-"W"IW'), w.week_start,
       (SELECT jsonb_agg(jsonb_build_object('topic', t.t, 'days', t.days)
                         ORDER BY t.days DESC, t.t)
        FROM topics AS t
        WHERE t.user_id = w.user_id AND t.week_start = w.week_start),
       coalesce(w.preferences, '[]'), coalesce(w.loops, '[]'),
       'Talked with the agent on ' || w.days || ' day'
           || CASE WHEN w.days > 1 THEN 's' ELSE '' END || '.',
       w.days, 0, {local_instant("w.week_start + 7", "time '04:00:10'")}
FROM weeks AS w
ORDER BY w.user_id, w.week_start
"""


@seeder(
    "dreaming",
    tables=("memories", "reflections", "agent_insights"),
    after=("conversations",),
)
def fill(connection: Connection, plan: Plan) -> dict[str, int]:
    users = plan.ranges["users"]
    per_chunk = max(plan.chunk // 4, 1)  # up to 8 memories a user, 1.1 on average
    memories = in_chunks(connection, plan, MEMORY_ROWS, *users, chunk=per_chunk)
    in_chunks(connection, plan, MERGES, *users, chunk=per_chunk)
    reflections = in_chunks(connection, plan, REFLECTIONS, *users, chunk=per_chunk)
    insights = in_chunks(connection, plan, INSIGHTS, *users, chunk=per_chunk)
    return {
        "memories": memories,
        "reflections": reflections,
        "agent_insights": insights,
    }
