"""A2A jobs: keep the envelopes we send venue agents, and the responses they send
back, from getting stuck. Dispatching itself is ``agnt_jobs.delivery.dispatch``."""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from agnt_jobs import logs
from agnt_jobs.clients.a2a import A2AClient
from agnt_jobs.delivery import dispatch
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

WAITING = "('REQUESTED', 'PENDING_VENUE')"

# Oldest first by expires_at alone, the order of the partial index, so a chunk stops
# reading after ``:limit`` rows. With ``, id`` added, envelopes sharing one expiry
# (made in one transaction with one TTL) had to be read and sorted in full by
# every chunk: agnt-jobs bench measured 1.7x the single UPDATE on 100,000 of them.
# Each claimed envelope is locked and PENDING, so the UPDATE takes every one: the
# count is the claim's, without a RETURNING list that fetches each row again.
REAP_STALE = sa.text(
    """
    WITH candidates AS (
        SELECT id FROM a2a_envelopes
        WHERE status = 'PENDING' AND expires_at <= :now
          -- an envelope being dispatched right now is left to its dispatcher
          AND (next_attempt_at IS NULL OR next_attempt_at <= :now)
        ORDER BY expires_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), expired AS (
        UPDATE a2a_envelopes AS e
        SET status = 'EXPIRED', status_changed_at = :now,
            last_error = 'TTL passed before the envelope was dispatched'
        WHERE e.id = ANY(ARRAY(SELECT id FROM candidates))
    )
    SELECT count(*) AS scanned, count(*) AS expired FROM candidates
    """
)


@job("reap_stale_envelopes")
def reap_stale_envelopes(ctx: RunContext) -> JobResult:
    """PENDING envelopes past their TTL (``expires_at <= now``) become EXPIRED.
    Their bookings are then cancelled by cancel_orphaned_bookings."""
    counts = until_done(
        ctx.engine, REAP_STALE, {"now": ctx.now}, ctx.settings.job_chunk_size
    )
    result = summary(counts, {})
    logger.info("reaped envelopes", extra=logs.event("a2a_reaped", **result))
    return result


# Walks the OPEN responses past the grace in (received_at, id) order, a chunk at a
# time, judging each chunk against the few waiting bookings: a claim of "the next
# orphans" instead made every chunk re-read all the OPEN responses still left.
# The chunk is locked as it is read (responses held elsewhere are passed over),
# and the closed count is the orphans' count: each is locked and OPEN, so the
# UPDATE takes every one, and a RETURNING list would fetch each row once more.
SWEEP_ORPHANED = sa.text(
    f"""
    WITH chunk AS (
        SELECT r.id, r.received_at AS at, r.booking_id, r.venue_id
        FROM venue_responses AS r
        WHERE r.status = 'OPEN' AND r.received_at <= :cutoff
          AND (r.received_at, r.id) > (:after_at, :after_id)
        ORDER BY r.received_at, r.id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), orphans AS (
        SELECT c.id FROM chunk AS c
        WHERE NOT EXISTS (
            SELECT 1 FROM bookings AS b
            WHERE b.id = c.booking_id AND b.status IN {WAITING}
              AND b.venue_id = c.venue_id
        )
    ), closed AS (
        UPDATE venue_responses AS r
        SET status = 'CLOSED', close_reason = 'orphaned', resolved_at = :now
        WHERE r.id = ANY(ARRAY(SELECT id FROM orphans))
    )
    SELECT (SELECT count(*) FROM chunk) AS scanned,
           {LAST_OF_CHUNK},
           (SELECT count(*) FROM orphans) AS closed
    """
)


@job("sweep_orphaned_responses")
def sweep_orphaned_responses(ctx: RunContext) -> JobResult:
    """OPEN venue responses with no matching live booking become CLOSED with reason
    ``orphaned``. No match: no booking, a booking no longer waiting on the venue
    (already decided, cancelled, completed), or a booking at another venue. Only
    responses older than ``orphaned_response_grace_minutes`` are judged, so one
    that arrived a moment before its booking row was matched is not closed early."""
    cutoff = ctx.now - timedelta(minutes=ctx.settings.orphaned_response_grace_minutes)
    counts = keyset_by_time(
        ctx.engine,
        SWEEP_ORPHANED,
        {"now": ctx.now, "cutoff": cutoff},
        ctx.settings.job_chunk_size,
    )
    result = summary(counts, {})
    logger.info("swept responses", extra=logs.event("a2a_responses_swept", **result))
    return result


APPLY_RESPONSES = sa.text(
    f"""
    WITH stuck AS (
        SELECT b.id FROM bookings AS b
        WHERE b.status IN {WAITING}
          AND EXISTS (
              SELECT 1 FROM venue_responses AS r
              WHERE r.booking_id = b.id AND r.status = 'OPEN'
                AND r.venue_id = b.venue_id AND r.received_at <= :cutoff
          )
        ORDER BY b.id
        LIMIT :limit
        FOR UPDATE OF b SKIP LOCKED
    ), latest AS (
        -- The venue's last word wins; earlier open answers are superseded.
        SELECT DISTINCT ON (r.booking_id) r.id, r.booking_id, r.envelope_id,
               r.decision
        FROM venue_responses AS r JOIN bookings AS b ON b.id = r.booking_id
        WHERE r.booking_id IN (SELECT id FROM stuck) AND r.status = 'OPEN'
          AND r.venue_id = b.venue_id
        ORDER BY r.booking_id, r.received_at DESC, r.id DESC
    ), decided AS (
        UPDATE bookings AS b
        SET status = CASE l.decision WHEN 'ACCEPT' THEN 'CONFIRMED'
                                     ELSE 'DECLINED' END,
            status_changed_at = :now
        FROM latest AS l
        WHERE b.id = l.booking_id
          AND b.id = ANY(ARRAY(SELECT booking_id FROM latest))
        RETURNING b.*
    ), applied AS (
        UPDATE venue_responses AS r SET status = 'APPLIED', resolved_at = :now
        WHERE r.id = ANY(ARRAY(SELECT id FROM latest))
        RETURNING r.id
    ), superseded AS (
        UPDATE venue_responses AS r
        SET status = 'CLOSED', close_reason = 'superseded', resolved_at = :now
        FROM stuck AS s
        WHERE r.booking_id = s.id AND r.status = 'OPEN'
          AND r.id NOT IN (SELECT id FROM latest)
        RETURNING r.id
    ), responded AS (
        UPDATE a2a_envelopes AS e SET status = 'RESPONDED', status_changed_at = :now
        FROM latest AS l
        WHERE e.id = l.envelope_id AND e.status <> 'RESPONDED'
        RETURNING e.id
    ), queued AS (
        INSERT INTO send_queue {SEND_QUEUE_COLUMNS}
        SELECT 'booking_decision:' || b.id, 'booking_decision', u.id,
               u.channel, u.channel_address,
               CASE b.status
                   WHEN 'CONFIRMED' THEN format(
                       'Your booking at %s on %s for %s is confirmed.',
                       v.name, to_char(b.slot_start AT TIME ZONE :tz,
                                       'Dy DD Mon HH24:MI'), b.party_size)
                   ELSE format(
                       'Sorry: %s cannot take your booking on %s.',
                       v.name, to_char(b.slot_start AT TIME ZONE :tz,
                                       'Dy DD Mon HH24:MI'))
               END
        FROM decided AS b
        JOIN venues AS v ON v.id = b.venue_id
        JOIN users AS u ON u.id = b.user_id
        WHERE {REACHABLE}
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM stuck) AS scanned,
           (SELECT count(*) FROM applied) AS responses_applied,
           (SELECT count(*) FROM superseded) AS responses_superseded,
           (SELECT count(*) FROM queued) AS users_told
    """
)

CREATE_MISSING_ENVELOPES = sa.text(
    f"""
    WITH candidates AS (
        SELECT b.id, b.venue_id, b.slot_start, b.slot_end, b.party_size
        FROM bookings AS b
        WHERE b.status IN {WAITING}
          AND b.status_changed_at <= :cutoff
          AND b.slot_start > :now
          AND NOT EXISTS (
              SELECT 1 FROM a2a_envelopes AS e
              WHERE e.booking_id = b.id AND e.kind = 'booking_request'
          )
        ORDER BY b.id
        LIMIT :limit
    ), created AS (
        -- The payload carries no personal data: it outlives the user's purge.
        INSERT INTO a2a_envelopes (booking_id, venue_id, kind, payload, expires_at)
        SELECT id, venue_id, 'booking_request',
               jsonb_build_object('booking_id', id, 'slot_start', slot_start,
                                  'slot_end', slot_end, 'party_size', party_size),
               :expires_at
        FROM candidates
        ON CONFLICT (booking_id, kind) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM candidates) AS scanned,
           (SELECT count(*) FROM created) AS envelopes_created
    """
)


@job("recover_stuck_bookings", needs=("channel_gateway_url",))
def recover_stuck_bookings(ctx: RunContext) -> JobResult:
    """Unstick bookings caught between A2A states for longer than
    ``stuck_after_minutes``:

    * a waiting booking with an OPEN response from its venue older than that: the
      latest response is applied (ACCEPT -> CONFIRMED, DECLINE -> DECLINED), the
      response APPLIED, any earlier open ones CLOSED as ``superseded``, the envelope
      RESPONDED, and the user told;
    * a waiting booking with no request envelope: one is created and dispatched to
      the venue agent (and so is any envelope left PENDING, never dispatched, for
      that long, e.g. by a crash between creating and dispatching it). A failed
      dispatch is DISPATCH_FAILED, for retry_dispatch_failed.
    """
    client = gateway(ctx)
    settings = ctx.settings
    cutoff = ctx.now - timedelta(minutes=settings.stuck_after_minutes)
    chunk = settings.job_chunk_size
    params = {"now": ctx.now, "cutoff": cutoff, "tz": settings.business_timezone}
    counts = until_done(ctx.engine, APPLY_RESPONSES, params, chunk)
    expires_at = ctx.now + timedelta(minutes=settings.a2a_envelope_ttl_minutes)
    create = {**params, "expires_at": expires_at}
    counts.update(until_done(ctx.engine, CREATE_MISSING_ENVELOPES, create, chunk))
    with A2AClient.from_settings(settings) as a2a:
        # The envelopes just created, and any other never-dispatched one of a
        # booking stuck as long; fresh bookings' envelopes are the platform's.
        dispatched = dispatch.dispatch_due(
            ctx.engine, settings, a2a, statuses=("PENDING",), waiting_since=cutoff
        )
    result = summary(counts, deliver(ctx, client, "booking_decision"))
    result.update(dispatched)
    logger.info("recovered", extra=logs.event("bookings_recovered", **result))
    return result


RETIRE_FAILED = sa.text(
    f"""
    WITH candidates AS (
        SELECT e.id FROM a2a_envelopes AS e JOIN bookings AS b ON b.id = e.booking_id
        WHERE e.status = 'DISPATCH_FAILED' AND e.next_attempt_at <= :now
          AND (b.status NOT IN {WAITING} OR b.slot_start <= :now)
        ORDER BY e.next_attempt_at, e.id
        LIMIT :limit
        FOR UPDATE OF e SKIP LOCKED
    ), retired AS (
        UPDATE a2a_envelopes AS e
        SET status = 'EXPIRED', status_changed_at = :now, next_attempt_at = NULL,
            last_error = 'booking no longer waiting on the venue'
        WHERE e.id = ANY(ARRAY(SELECT id FROM candidates))
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM candidates) AS scanned,
           (SELECT count(*) FROM retired) AS retired
    """
)


@job("retry_dispatch_failed")
def retry_dispatch_failed(ctx: RunContext) -> JobResult:
    """Re-dispatch DISPATCH_FAILED envelopes due for retry to their venue agent;
    a failure backs off again; the last allowed attempt
    (``a2a_max_dispatch_attempts``) or a permanent refusal makes the envelope
    EXPIRED with a dead letter.

    An envelope whose booking no longer waits on the venue (cancelled, decided) or
    whose slot has started is not sent: it becomes EXPIRED (``retired``) without a
    dead letter, since nothing was lost.
    """
    settings = ctx.settings
    counts = until_done(
        ctx.engine, RETIRE_FAILED, {"now": ctx.now}, settings.job_chunk_size
    )
    with A2AClient.from_settings(settings) as a2a:
        dispatched = dispatch.dispatch_due(
            ctx.engine, settings, a2a, statuses=("DISPATCH_FAILED",)
        )
    result = summary(counts, dispatched)
    logger.info("re-dispatched", extra=logs.event("a2a_redispatched", **result))
    return result
