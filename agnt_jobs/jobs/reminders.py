"""Messages around a visit: the reminder before it and the rating prompt after it.
Each booking gets at most one of each, ever (``reminders.booking_id`` is unique,
``rating_prompts`` is keyed by booking), and each message has the booking's key in
the send queue, so a second run or a re-run after a crash sends nothing twice."""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from agnt_jobs import logs
from agnt_jobs.jobs.common import (
    LAST_OF_CHUNK,
    REACHABLE,
    SEND_QUEUE_COLUMNS,
    deliver,
    gateway,
    keyset_by_time,
    summary,
    until_done,
)
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job

logger = logging.getLogger(__name__)

# Walks the horizon's CONFIRMED bookings in (slot, id) order, a chunk at a time,
# the reminded ones included: skipping those in SQL instead would make every chunk
# scan again past all the bookings reminded by the chunks before it.
CREATE_REMINDERS = sa.text(
    f"""
    WITH chunk AS (
        SELECT b.id, b.slot_start AS at FROM bookings AS b
        WHERE b.status = 'CONFIRMED' AND b.slot_start > :now
          AND b.slot_start <= :horizon
          AND (b.slot_start, b.id) > (:after_at, :after_id)
        ORDER BY b.slot_start, b.id
        LIMIT :limit
    ), created AS (
        INSERT INTO reminders (booking_id, due_at)
        SELECT c.id, greatest(c.at - make_interval(mins => :lead), :now)
        FROM chunk AS c
        WHERE NOT EXISTS (SELECT 1 FROM reminders AS r WHERE r.booking_id = c.id)
        ON CONFLICT (booking_id) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM chunk) AS scanned,
           {LAST_OF_CHUNK},
           (SELECT count(*) FROM created) AS reminders_created
    """
)


@job("booking_reminders")
def booking_reminders(ctx: RunContext) -> JobResult:
    """CONFIRMED bookings starting within the next ``reminder_horizon_hours`` that
    have no reminder get one, due ``reminder_lead_minutes`` before the slot, or now
    if that is already past (never in the past). One reminder per booking, ever:
    a booking that was reminded, cancelled and re-confirmed is not reminded again.
    Sending is deliver_reminders' work."""
    settings = ctx.settings
    params = {
        "now": ctx.now,
        "horizon": ctx.now + timedelta(hours=settings.reminder_horizon_hours),
        "lead": settings.reminder_lead_minutes,
    }
    counts = keyset_by_time(
        ctx.engine, CREATE_REMINDERS, params, settings.job_chunk_size
    )
    result = summary(counts, {})
    logger.info("reminders created", extra=logs.event("reminders_created", **result))
    return result


DELIVER_REMINDERS = sa.text(
    f"""
    WITH due AS (
        SELECT r.id, r.booking_id FROM reminders AS r
        WHERE r.status = 'PENDING' AND r.due_at <= :now
        ORDER BY r.due_at, r.id
        LIMIT :limit
        FOR UPDATE OF r SKIP LOCKED
    ), judged AS (
        SELECT due.id, b.id AS booking_id, b.slot_start, b.party_size, v.name,
               u.id AS user_id, u.channel, u.channel_address,
               CASE WHEN b.status <> 'CONFIRMED' THEN 'cancelled'
                    WHEN b.slot_start <= :now THEN 'started'
                    WHEN u.id IS NULL OR NOT ({REACHABLE}) THEN 'unreachable'
               END AS skip_reason
        FROM due
        JOIN bookings AS b ON b.id = due.booking_id
        JOIN venues AS v ON v.id = b.venue_id
        LEFT JOIN users AS u ON u.id = b.user_id
    ), queued AS (
        INSERT INTO send_queue {SEND_QUEUE_COLUMNS}
        SELECT 'reminder:' || booking_id, 'booking_reminder', user_id, channel,
               channel_address,
               format('Reminder: your booking at %s is on %s for %s.', name,
                      to_char(slot_start AT TIME ZONE :tz, 'Dy DD Mon HH24:MI'),
                      party_size)
        FROM judged WHERE skip_reason IS NULL
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING 1
    ), marked AS (
        UPDATE reminders AS r
        SET status = CASE WHEN j.skip_reason IS NULL THEN 'SENT' ELSE 'SKIPPED' END,
            skip_reason = j.skip_reason, processed_at = :now
        FROM judged AS j
        WHERE r.id = j.id AND r.id = ANY(ARRAY(SELECT id FROM judged))
        RETURNING r.status
    )
    SELECT (SELECT count(*) FROM due) AS scanned,
           (SELECT count(*) FROM marked WHERE status = 'SENT') AS reminders_sent,
           (SELECT count(*) FROM marked WHERE status = 'SKIPPED') AS reminders_skipped
    """
)


@job("deliver_reminders", needs=("channel_gateway_url",))
def deliver_reminders(ctx: RunContext) -> JobResult:
    """PENDING reminders whose ``due_at`` has passed are queued for sending (key
    ``reminder:{booking_id}``) and become SENT in the same transaction, then
    delivered; the send queue owns retries from there. A reminder whose booking is
    no longer CONFIRMED (``cancelled``), has already started (``started``), or
    whose user cannot be messaged (``unreachable``) becomes SKIPPED instead."""
    client = gateway(ctx)
    params = {"now": ctx.now, "tz": ctx.settings.business_timezone}
    counts = until_done(
        ctx.engine, DELIVER_REMINDERS, params, ctx.settings.job_chunk_size
    )
    result = summary(counts, deliver(ctx, client, "booking_reminder"))
    logger.info("reminders sent", extra=logs.event("reminders_delivered", **result))
    return result


PROMPT_RATINGS = sa.text(
    f"""
    WITH candidates AS (
        SELECT b.id, b.venue_id, u.id AS user_id, u.channel, u.channel_address
        FROM bookings AS b JOIN users AS u ON u.id = b.user_id
        WHERE b.status = 'COMPLETED'
          AND b.slot_end > :oldest AND b.slot_end <= :newest
          AND {REACHABLE}
          AND NOT EXISTS (SELECT 1 FROM rating_prompts AS p WHERE p.booking_id = b.id)
          AND NOT EXISTS (SELECT 1 FROM ratings AS r WHERE r.booking_id = b.id)
        ORDER BY b.slot_end, b.id
        LIMIT :limit
    ), prompted AS (
        INSERT INTO rating_prompts (booking_id, prompted_at)
        SELECT id, :now FROM candidates
        ON CONFLICT (booking_id) DO NOTHING
        RETURNING booking_id
    ), queued AS (
        INSERT INTO send_queue {SEND_QUEUE_COLUMNS}
        SELECT 'rating_prompt:' || c.id, 'rating_prompt', c.user_id, c.channel,
               c.channel_address,
               format('How was %s? Reply with 1 to 5 stars.', v.name)
        FROM prompted AS p
        JOIN candidates AS c ON c.id = p.booking_id
        JOIN venues AS v ON v.id = c.venue_id
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM candidates) AS scanned,
           (SELECT count(*) FROM queued) AS prompts_queued
    """
)


@job("rating_prompt", needs=("channel_gateway_url",))
def rating_prompt(ctx: RunContext) -> JobResult:
    """Users of bookings COMPLETED between ``rating_prompt_min_age_hours`` and
    ``rating_prompt_max_age_hours`` ago are asked for a rating, once per booking.

    "Completed at" is the end of the slot (when the visit ended), not when
    mark_completed_bookings noticed: after an outage, visits older than the window
    are not prompted days late. Bookings already rated, and users who cannot be
    messaged, are not prompted."""
    client = gateway(ctx)
    settings = ctx.settings
    params = {
        "now": ctx.now,
        "oldest": ctx.now - timedelta(hours=settings.rating_prompt_max_age_hours),
        "newest": ctx.now - timedelta(hours=settings.rating_prompt_min_age_hours),
    }
    counts = until_done(ctx.engine, PROMPT_RATINGS, params, settings.job_chunk_size)
    result = summary(counts, deliver(ctx, client, "rating_prompt"))
    logger.info("ratings prompted", extra=logs.event("rating_prompted", **result))
    return result
