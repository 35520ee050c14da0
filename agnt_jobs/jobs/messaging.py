"""Messaging jobs: retrying the send queue, and the periodic messages (weekly nudges,
the venue owner's evening summary, the spend digest, the nutrition summary).

A periodic message is sent once per subject per period: its send-queue idempotency
key is ``{kind}:{subject id}:{period label}`` with the period taken from ``ctx.tick``
(the scheduled instant), so a late run, a second run or a re-run after a crash
works on the same period and queues nothing twice. Passes over every user or venue
walk the table in id order, one chunk per transaction.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from agnt_jobs import logs, timeutil
from agnt_jobs.checkpoint import checkpoint
from agnt_jobs.delivery import send_queue
from agnt_jobs.jobs.common import (
    REACHABLE,
    SEND_QUEUE_COLUMNS,
    deliver,
    gateway,
    keyset,
    summary,
)
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job

logger = logging.getLogger(__name__)

STRANDED_PENDING = sa.text(
    """
    SELECT id FROM send_queue
    WHERE status = 'PENDING' AND next_attempt_at <= now() AND created_at <= :cutoff
      AND id > :after
    ORDER BY id
    LIMIT :limit
    """
)


@job("retry_failed_sends", needs=("channel_gateway_url",))
def retry_failed_sends(ctx: RunContext) -> JobResult:
    """Deliver FAILED send-queue rows whose ``next_attempt_at`` has passed (backoff,
    then DEAD plus a dead letter after ``max_send_attempts``: ``send_queue``), and
    PENDING rows older than ``send_pending_grace_seconds``: those a job queued and
    then crashed before delivering (a job delivers its own fresh rows itself)."""
    client = gateway(ctx)
    settings = ctx.settings
    totals = Counter(
        send_queue.deliver_due(ctx.engine, settings, client, statuses=("FAILED",))
    )
    params = {
        "cutoff": ctx.now - timedelta(seconds=settings.send_pending_grace_seconds),
        "after": 0,
        "limit": settings.job_chunk_size,
    }
    stranded = 0
    while True:
        checkpoint()
        with ctx.engine.connect() as connection:
            ids = list(connection.execute(STRANDED_PENDING, params).scalars())
        if not ids:
            break
        stranded += len(ids)
        totals.update(
            send_queue.deliver_due(
                ctx.engine, settings, client, statuses=("PENDING",), ids=ids
            )
        )
        if len(ids) < settings.job_chunk_size:
            break
        params["after"] = ids[-1]
    result = {name: totals.get(name, 0) for name in ("sent", "failed", "dead")}
    result["stranded_pending"] = stranded
    if totals.get("lease_lost"):
        result["lease_lost"] = totals["lease_lost"]
    logger.info("send queue retried", extra=logs.event("sends_retried", **result))
    return result


NUDGE = sa.text(
    f"""
    WITH chunk AS (
        SELECT id FROM users WHERE id > :after ORDER BY id LIMIT :limit
    ), eligible AS (
        SELECT u.id, u.channel, u.channel_address, u.display_name
        FROM chunk JOIN users AS u ON u.id = chunk.id
        WHERE {REACHABLE} AND u.marketing_opt_in
          AND u.last_active_at <= :idle_cutoff
          AND NOT EXISTS (
              SELECT 1 FROM user_nudges AS n
              WHERE n.user_id = u.id AND n.nudged_at > :cooldown_cutoff
          )
    ), nudged AS (
        INSERT INTO user_nudges (user_id, iso_week, nudged_at)
        SELECT id, :week, :now FROM eligible
        ON CONFLICT (user_id, iso_week) DO NOTHING
        RETURNING user_id
    ), queued AS (
        INSERT INTO send_queue {SEND_QUEUE_COLUMNS}
        SELECT 'nudge:' || e.id || ':' || :week, 're_engagement', e.id, e.channel,
               e.channel_address,
               format('Hi %s, it has been a while! Tell me what you feel like this '
                      'week and I will find you a table.',
                      coalesce(e.display_name, 'there'))
        FROM nudged JOIN eligible AS e ON e.id = nudged.user_id
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM chunk) AS scanned,
           (SELECT max(id) FROM chunk) AS last_id,
           (SELECT count(*) FROM queued) AS nudges_queued
    """
)


@job("re_engagement", needs=("channel_gateway_url",))
def re_engagement(ctx: RunContext) -> JobResult:
    """Nudge users who agreed to marketing, can be messaged, and have been inactive
    for ``re_engagement_idle_days`` (``last_active_at``; a user never active has
    nothing to come back to and is not nudged), unless they were nudged in the last
    ``re_engagement_cooldown_days``. One nudge per user per ISO week (WITA) of the
    tick: ``user_nudges`` is unique on (user, week)."""
    client = gateway(ctx)
    settings = ctx.settings
    week = timeutil.iso_week(ctx.tick, timeutil.zone(settings.business_timezone))
    params = {
        "now": ctx.now,
        "week": week.label,
        "idle_cutoff": ctx.now - timedelta(days=settings.re_engagement_idle_days),
        "cooldown_cutoff": ctx.now
        - timedelta(days=settings.re_engagement_cooldown_days),
    }
    counts = keyset(ctx.engine, NUDGE, params, settings.job_chunk_size)
    result = summary(counts, deliver(ctx, client, "re_engagement"))
    result["iso_week"] = week.label
    logger.info("nudged", extra=logs.event("re_engagement_nudged", **result))
    return result


VENUE_SUMMARY = sa.text(
    f"""
    WITH chunk AS (
        SELECT id FROM venues WHERE id > :after ORDER BY id LIMIT :limit
    ), figures AS (
        SELECT v.id, v.name, u.id AS owner_id, u.channel, u.channel_address,
               coalesce(bk.total, 0) AS bookings, coalesce(bk.covers, 0) AS covers,
               coalesce(bk.by_status, 'none') AS by_status,
               rt.new_ratings, rt.average
        FROM chunk
        JOIN venues AS v ON v.id = chunk.id
        JOIN users AS u ON u.id = v.owner_user_id
        CROSS JOIN LATERAL (
            SELECT sum(n) AS total, sum(covers) AS covers,
                   string_agg(status || ' ' || n, ', ' ORDER BY status) AS by_status
            FROM (
                SELECT status, count(*) AS n,
                       coalesce(sum(party_size) FILTER (
                           WHERE status IN ('CONFIRMED', 'COMPLETED')), 0) AS covers
                FROM bookings
                WHERE venue_id = v.id AND slot_start >= :start AND slot_start < :end
                GROUP BY status
            ) AS s
        ) AS bk
        CROSS JOIN LATERAL (
            SELECT count(*) AS new_ratings, round(avg(score), 1) AS average
            FROM ratings
            WHERE venue_id = v.id AND created_at >= :start AND created_at < :end
        ) AS rt
        WHERE v.is_active AND {REACHABLE}
    ), queued AS (
        INSERT INTO send_queue {SEND_QUEUE_COLUMNS}
        SELECT 'summary:' || f.id || ':' || :day, 'venue_daily_summary', f.owner_id,
               f.channel, f.channel_address,
               format('%s, %s: %s bookings (%s), %s covers, %s new ratings%s.',
                      f.name, CAST(:day AS text), f.bookings, f.by_status, f.covers,
                      f.new_ratings,
                      CASE WHEN f.new_ratings > 0
                           THEN format(' (average %s)', f.average) ELSE '' END)
        FROM figures AS f
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM chunk) AS scanned,
           (SELECT max(id) FROM chunk) AS last_id,
           (SELECT count(*) FROM queued) AS summaries_queued
    """
)


@job("venue_daily_summary", needs=("channel_gateway_url",))
def venue_daily_summary(ctx: RunContext) -> JobResult:
    """Every active venue with an owner who can be messaged gets the day's summary
    (the WITA date of the tick): bookings whose slot is that day, by status; covers
    (party sizes of CONFIRMED and COMPLETED ones); ratings received that day. Once
    per venue per date, sent even on a day with no bookings (the owner then knows
    the platform is working, not silent)."""
    client = gateway(ctx)
    settings = ctx.settings
    day = timeutil.day(ctx.tick, timeutil.zone(settings.business_timezone))
    params = {"start": day.start, "end": day.end, "day": day.label}
    counts = keyset(ctx.engine, VENUE_SUMMARY, params, settings.job_chunk_size)
    result = summary(counts, deliver(ctx, client, "venue_daily_summary"))
    result["date"] = day.label
    logger.info("venue summaries", extra=logs.event("venue_summaries_sent", **result))
    return result
