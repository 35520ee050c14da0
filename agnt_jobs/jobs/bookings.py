"""Booking status jobs: confirm what venues forgot to answer, complete what has
happened, cancel what can no longer happen. Each is one claim-and-change statement
run in chunks; the ones that change what a user expects also tell the user.

Times: ``ctx.now`` (the run's wall clock) for every window, stored as
``status_changed_at`` so the next job's window starts from the same clock.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from agnt_jobs import logs
from agnt_jobs.jobs.common import (
    REACHABLE,
    SEND_QUEUE_COLUMNS,
    deliver,
    gateway,
    summary,
    until_done,
)
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job

logger = logging.getLogger(__name__)

SLOT_TEXT = "to_char(b.slot_start AT TIME ZONE :tz, 'Dy DD Mon HH24:MI')"

AUTO_CONFIRM = sa.text(
    f"""
    WITH candidates AS (
        SELECT b.id FROM bookings AS b
        WHERE b.status = 'PENDING_VENUE'
          AND b.status_changed_at <= :cutoff
          AND b.slot_start > :now
          AND EXISTS (
              SELECT 1 FROM a2a_envelopes AS e
              WHERE e.booking_id = b.id AND e.kind = 'booking_request'
                AND e.status IN ('DISPATCHED', 'DELIVERED')
          )
        ORDER BY b.status_changed_at, b.id
        LIMIT :limit
        FOR UPDATE OF b SKIP LOCKED
    ), confirmed AS (
        UPDATE bookings AS b
        SET status = 'CONFIRMED', auto_confirmed = true, status_changed_at = :now
        FROM candidates AS c
        WHERE b.id = c.id
        RETURNING b.*
    ), queued AS (
        INSERT INTO send_queue {SEND_QUEUE_COLUMNS}
        SELECT 'booking_auto_confirmed:' || b.id, 'booking_auto_confirmed', u.id,
               u.channel, u.channel_address,
               format('Your booking at %s on %s for %s is confirmed.',
                      v.name, {SLOT_TEXT}, b.party_size)
        FROM confirmed AS b
        JOIN venues AS v ON v.id = b.venue_id
        JOIN users AS u ON u.id = b.user_id
        WHERE {REACHABLE}
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM candidates) AS scanned,
           (SELECT count(*) FROM confirmed) AS auto_confirmed,
           (SELECT count(*) FROM queued) AS users_told
    """
)


@job("auto_confirm_stale_bookings", needs=("channel_gateway_url",))
def auto_confirm_stale_bookings(ctx: RunContext) -> JobResult:
    """Bookings the venue has had (PENDING_VENUE, request envelope DISPATCHED or
    DELIVERED) for longer than ``auto_confirm_after_minutes`` without answering, and
    whose slot is still ahead, become CONFIRMED with ``auto_confirmed``; the user is
    told.

    Only requests that reached the venue are confirmed: a REQUESTED booking, or one
    whose envelope failed or expired, was never seen by the venue, and confirming it
    would promise a table nobody holds; recovery and cancellation handle those.
    """
    client = gateway(ctx)
    settings = ctx.settings
    params = {
        "now": ctx.now,
        "cutoff": ctx.now - timedelta(minutes=settings.auto_confirm_after_minutes),
        "tz": settings.business_timezone,
    }
    counts = until_done(ctx.engine, AUTO_CONFIRM, params, settings.job_chunk_size)
    result = summary(counts, deliver(ctx, client, "booking_auto_confirmed"))
    logger.info("auto-confirmed", extra=logs.event("bookings_auto_confirmed", **result))
    return result


MARK_COMPLETED = sa.text(
    """
    WITH candidates AS (
        SELECT id FROM bookings
        WHERE status = 'CONFIRMED' AND slot_end <= :now
        ORDER BY slot_end, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), completed AS (
        UPDATE bookings AS b SET status = 'COMPLETED', status_changed_at = :now
        WHERE b.id = ANY(ARRAY(SELECT id FROM candidates))
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM candidates) AS scanned,
           (SELECT count(*) FROM completed) AS completed
    """
)


@job("mark_completed_bookings")
def mark_completed_bookings(ctx: RunContext) -> JobResult:
    """CONFIRMED bookings whose slot has ended (``slot_end <= now``) become COMPLETED.
    Nobody is messaged: the rating prompt follows a few hours later."""
    counts = until_done(
        ctx.engine, MARK_COMPLETED, {"now": ctx.now}, ctx.settings.job_chunk_size
    )
    result = summary(counts, {})
    logger.info("completed", extra=logs.event("bookings_completed", **result))
    return result


CANCEL_ORPHANED = sa.text(
    f"""
    WITH candidates AS (
        SELECT b.id,
               CASE WHEN e.status = 'EXPIRED' THEN 'envelope_expired'
                    WHEN e.id IS NULL AND b.status_changed_at <= :orphan_cutoff
                        THEN 'no_envelope'
                    ELSE 'slot_passed' END AS reason
        FROM bookings AS b
        LEFT JOIN a2a_envelopes AS e
            ON e.booking_id = b.id AND e.kind = 'booking_request'
        WHERE b.status IN ('REQUESTED', 'PENDING_VENUE')
          AND (e.status = 'EXPIRED'
               OR (e.id IS NULL AND b.status_changed_at <= :orphan_cutoff)
               OR b.slot_start <= :now)
        -- Oldest first. Not by id: the planner would walk the whole primary key
        -- looking for the few waiting bookings instead of using a status index.
        ORDER BY b.status_changed_at, b.id
        LIMIT :limit
        FOR UPDATE OF b SKIP LOCKED
    ), cancelled AS (
        UPDATE bookings AS b
        SET status = 'CANCELLED', cancelled_reason = c.reason, status_changed_at = :now
        FROM candidates AS c
        WHERE b.id = c.id AND b.id = ANY(ARRAY(SELECT id FROM candidates))
        RETURNING b.*
    ), queued AS (
        INSERT INTO send_queue {SEND_QUEUE_COLUMNS}
        SELECT 'booking_cancelled:' || b.id, 'booking_cancelled', u.id,
               u.channel, u.channel_address,
               format('Sorry: %s did not answer your booking request for %s in '
                      'time, so we cancelled it. Nothing was charged.',
                      v.name, {SLOT_TEXT})
        FROM cancelled AS b
        JOIN venues AS v ON v.id = b.venue_id
        JOIN users AS u ON u.id = b.user_id
        WHERE {REACHABLE}
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM candidates) AS scanned,
           (SELECT count(*) FROM cancelled) AS cancelled,
           (SELECT count(*) FROM cancelled
             WHERE cancelled_reason = 'envelope_expired') AS envelope_expired,
           (SELECT count(*) FROM cancelled
             WHERE cancelled_reason = 'no_envelope') AS no_envelope,
           (SELECT count(*) FROM cancelled
             WHERE cancelled_reason = 'slot_passed') AS slot_passed,
           (SELECT count(*) FROM queued) AS users_told
    """
)


@job("cancel_orphaned_bookings", needs=("channel_gateway_url",))
def cancel_orphaned_bookings(ctx: RunContext) -> JobResult:
    """Bookings still waiting on the venue (REQUESTED, PENDING_VENUE) become
    CANCELLED, with ``cancelled_reason``, when

    * their request envelope EXPIRED (``envelope_expired``),
    * they have no request envelope and have waited ``orphaned_booking_after_minutes``
      (``no_envelope``: longer than recovery's ``stuck_after``, so recovery gets
      the first chance to dispatch one), or
    * their slot has already started (``slot_passed``: the venue never answered in
      time; without this a waiting booking would wait forever);

    the user is told.
    """
    client = gateway(ctx)
    settings = ctx.settings
    params = {
        "now": ctx.now,
        "orphan_cutoff": ctx.now
        - timedelta(minutes=settings.orphaned_booking_after_minutes),
        "tz": settings.business_timezone,
    }
    counts = until_done(ctx.engine, CANCEL_ORPHANED, params, settings.job_chunk_size)
    result = summary(counts, deliver(ctx, client, "booking_cancelled"))
    logger.info("cancelled orphans", extra=logs.event("bookings_cancelled", **result))
    return result
