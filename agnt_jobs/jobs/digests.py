"""Daily digests of what users logged with their agent: yesterday's spending (09:00)
and today's calories against their goal (21:00). Each is one message per user per
WITA date (key ``{kind}:{user id}:{date}``), only to users with something logged.

Both walk the day's entries in (time, id) order through the ``(<time>, id)`` index,
a chunk at a time, and sum each of the chunk's users' whole day through the
``(user_id, <time>)`` index: the cost follows the day's entries, not the number of
users. A user whose entries fall in several chunks is summed again in each, and
the digest's key makes every repeat a no-op.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from agnt_jobs import logs, timeutil
from agnt_jobs.jobs.common import (
    LAST_OF_CHUNK,
    REACHABLE,
    SEND_QUEUE_COLUMNS,
    deliver,
    gateway,
    keyset_by_time,
    summary,
)
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job

logger = logging.getLogger(__name__)

SPEND_DIGEST = sa.text(
    f"""
    WITH chunk AS (
        SELECT spent_at AS at, id, user_id FROM user_spend_entries
        WHERE spent_at >= :start AND spent_at < :end
          AND (spent_at, id) > (:after_at, :after_id)
        ORDER BY spent_at, id
        LIMIT :limit
    ), spent AS (
        SELECT u.id, u.channel, u.channel_address, t.entries, t.totals
        FROM (SELECT DISTINCT user_id FROM chunk) AS c
        JOIN users AS u ON u.id = c.user_id
        CROSS JOIN LATERAL (
            SELECT sum(n) AS entries,
                   string_agg(currency || ' ' ||
                              to_char(total, 'FM999G999G999G990D00'), ' + '
                              ORDER BY currency) AS totals
            FROM (
                SELECT currency, count(*) AS n, sum(amount) AS total
                FROM user_spend_entries AS e
                WHERE e.user_id = u.id AND e.spent_at >= :start AND e.spent_at < :end
                GROUP BY currency
            ) AS per_currency
        ) AS t
        WHERE t.entries > 0 AND {REACHABLE}
    ), queued AS (
        INSERT INTO send_queue {SEND_QUEUE_COLUMNS}
        SELECT 'spend_digest:' || s.id || ':' || :day, 'spend_digest', s.id,
               s.channel, s.channel_address,
               format('Your spending on %s: %s across %s entries.',
                      CAST(:day AS text), s.totals, s.entries)
        FROM spent AS s
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM chunk) AS scanned,
           {LAST_OF_CHUNK},
           (SELECT count(*) FROM queued) AS digests_queued
    """
)


@job("spend_digest", needs=("channel_gateway_url",))
def spend_digest(ctx: RunContext) -> JobResult:
    """Yesterday's (the WITA day before the tick's) spending per user, one digest per
    user per date, only to users with at least one entry that day who can be
    messaged. Amounts are summed per currency, never converted."""
    client = gateway(ctx)
    settings = ctx.settings
    day = timeutil.day(ctx.tick, timeutil.zone(settings.business_timezone), -1)
    params = {"start": day.start, "end": day.end, "day": day.label}
    counts = keyset_by_time(ctx.engine, SPEND_DIGEST, params, settings.job_chunk_size)
    result = summary(counts, deliver(ctx, client, "spend_digest"))
    result["date"] = day.label
    logger.info("spend digests", extra=logs.event("spend_digests_sent", **result))
    return result


NUTRITION_SUMMARY = sa.text(
    f"""
    WITH chunk AS (
        SELECT eaten_at AS at, id, user_id FROM nutrition_entries
        WHERE eaten_at >= :start AND eaten_at < :end
          AND (eaten_at, id) > (:after_at, :after_id)
        ORDER BY eaten_at, id
        LIMIT :limit
    ), eaten AS (
        SELECT u.id, u.channel, u.channel_address, t.entries, t.calories,
               g.daily_calories AS goal
        FROM (SELECT DISTINCT user_id FROM chunk) AS c
        JOIN users AS u ON u.id = c.user_id
        CROSS JOIN LATERAL (
            SELECT count(*) AS entries, sum(calories) AS calories
            FROM nutrition_entries AS e
            WHERE e.user_id = u.id AND e.eaten_at >= :start AND e.eaten_at < :end
        ) AS t
        LEFT JOIN calorie_goals AS g ON g.user_id = u.id
        WHERE t.entries > 0 AND {REACHABLE}
    ), queued AS (
        INSERT INTO send_queue {SEND_QUEUE_COLUMNS}
        SELECT 'nutrition:' || e.id || ':' || :day, 'daily_nutrition_summary', e.id,
               e.channel, e.channel_address,
               format('Today (%s) you logged %s kcal in %s entries%s.',
                      CAST(:day AS text), e.calories, e.entries,
                      CASE WHEN e.goal IS NULL THEN ''
                           WHEN e.calories <= e.goal
                               THEN format(': %s kcal under your %s kcal goal',
                                           e.goal - e.calories, e.goal)
                           ELSE format(': %s kcal over your %s kcal goal',
                                       e.calories - e.goal, e.goal) END)
        FROM eaten AS e
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM chunk) AS scanned,
           {LAST_OF_CHUNK},
           (SELECT count(*) FROM queued) AS summaries_queued
    """
)


@job("daily_nutrition_summary", needs=("channel_gateway_url",))
def daily_nutrition_summary(ctx: RunContext) -> JobResult:
    """Today's (the tick's WITA date) calorie total against the user's goal, once per
    user per date, only to users who logged food that day and can be messaged. A
    user with no goal gets the total alone."""
    client = gateway(ctx)
    settings = ctx.settings
    day = timeutil.day(ctx.tick, timeutil.zone(settings.business_timezone))
    params = {"start": day.start, "end": day.end, "day": day.label}
    counts = keyset_by_time(
        ctx.engine, NUTRITION_SUMMARY, params, settings.job_chunk_size
    )
    result = summary(counts, deliver(ctx, client, "daily_nutrition_summary"))
    result["date"] = day.label
    logger.info("nutrition summaries", extra=logs.event("nutrition_sent", **result))
    return result
