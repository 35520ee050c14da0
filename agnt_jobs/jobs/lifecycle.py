"""Account and venue lifecycle: purging deleted users, B2B onboarding sessions,
referral codes and the venues' derived flags."""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agnt_jobs import logs
from agnt_jobs.checkpoint import checkpoint
from agnt_jobs.models.billing import LIVE_SUBSCRIPTION_STATUSES
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job
from agnt_jobs.walk import RangeChange, change_by_range

logger = logging.getLogger(__name__)

# Foreign keys to users that would stop (or silently fail) a purge: anything but
# ON DELETE CASCADE ('c') or SET NULL ('n').
BLOCKING_USER_FOREIGN_KEYS = sa.text(
    """
    SELECT conrelid::regclass::text AS table_name, conname
    FROM pg_constraint
    WHERE contype = 'f' AND confrelid = 'users'::regclass
      AND confdeltype NOT IN ('c', 'n')
    ORDER BY 1, 2
    """
)

# One chunk of users, in one statement: lock users past retention (skipping any a
# concurrent purge or the backend holds), anonymise the bookings and messages they
# leave behind, delete them. ON DELETE CASCADE removes their personal tables, SET
# NULL detaches what the platform keeps. Bookings and messages are detached here
# explicitly, in the same statement that clears their personal columns, so no
# kept row of a purged user ever keeps a name, a note or a phone number.
PURGE_USERS = sa.text(
    """
    WITH doomed AS MATERIALIZED (
        SELECT id FROM users
        WHERE deleted_at IS NOT NULL AND deleted_at < :cutoff
        ORDER BY deleted_at, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), anonymised AS (
        UPDATE bookings SET user_id = NULL, guest_name = NULL, notes = NULL
        WHERE user_id IN (SELECT id FROM doomed)
        RETURNING 1
    ), messages AS (
        UPDATE send_queue
        SET user_id = NULL, recipient = '[purged]', body = '[purged]',
            status = CASE WHEN status IN ('PENDING', 'FAILED') THEN 'DEAD'
                          ELSE status END,
            last_error = CASE WHEN status IN ('PENDING', 'FAILED')
                              THEN 'recipient purged' ELSE last_error END
        WHERE user_id IN (SELECT id FROM doomed)
        RETURNING 1
    ), purged AS (
        DELETE FROM users WHERE id IN (SELECT id FROM doomed) RETURNING 1
    )
    SELECT (SELECT count(*) FROM purged) AS count,
           (SELECT count(*) FROM anonymised) AS bookings,
           (SELECT count(*) FROM messages) AS messages
    """
)

# The sessions' and codes' changes below walk ranges of the time their partial index
# orders by, and claim their rows by ctid only once a row is held elsewhere
# (agnt_jobs.walk.change_by_range).
DELETE_EXPIRED_SESSIONS = RangeChange(
    "b2b_onboarding_sessions",
    "status <> 'COMPLETED' AND expires_at < :cutoff",
    order_by="expires_at",
)

# Abandoning a session (expiring a code) takes it out of its job's ``where``.
MARK_ABANDONED = RangeChange(
    "b2b_onboarding_sessions",
    "status = 'ACTIVE' AND last_activity_at < :cutoff",
    order_by="last_activity_at",
    assign="status = 'ABANDONED', abandoned_at = :now",
)

EXPIRE_REFERRALS = RangeChange(
    "referral_codes",
    "status = 'ACTIVE' AND redeemed_at IS NULL AND expires_at <= :now",
    order_by="expires_at",
    assign="status = 'EXPIRED', expired_at = :now",
)

# The venue flags from their sources of truth, one id range at a time. Only
# drifted rows are locked and written, and a drifted venue locked elsewhere (the
# platform editing it, another copy of this job) is skipped, not waited for: the
# next run fixes it. When two runs race, the second locks a row only after the
# first committed, and the UPDATE re-checks the row's new version and finds it
# already fixed, so drift counts once.
#
# The owner is looked up per venue of the chunk (a LATERAL subquery with LIMIT 1,
# which the planner cannot flatten into a join): as a plain LEFT JOIN the planner
# hashed the whole users table for every chunk (a chunk's rows come out of the
# CTE in id order, not owner order), and ``agnt-jobs bench`` measured the job at
# 4.4x the single statement at 4,000 venues and 300,000 users, 70 ms of it reading
# users. Probing pk_users costs what the chunk holds, whatever the users table.
RECONCILE_VENUES = sa.text(
    """
    WITH chunk AS (
        SELECT id, owner_user_id, suspended_at, is_claimed, is_active FROM venues
        WHERE id > :after ORDER BY id LIMIT :limit
    ), truth AS (
        SELECT c.id, c.is_claimed AS old_claimed, c.is_active AS old_active,
               owner.id IS NOT NULL AS claimed,
               owner.id IS NOT NULL AND c.suspended_at IS NULL AND EXISTS (
                   SELECT 1 FROM subscriptions s
                   WHERE s.venue_id = c.id AND s.status = ANY(:live)
               ) AS active
        FROM chunk c
        LEFT JOIN LATERAL (
            SELECT u.id FROM users u
            WHERE u.id = c.owner_user_id AND u.deleted_at IS NULL
            LIMIT 1
        ) owner ON true
    ), drifted AS (
        -- By primary key: a chunk has few drifted venues, if any.
        SELECT v.id FROM venues v
        WHERE v.id = ANY(ARRAY(
            SELECT id FROM truth
            WHERE (old_claimed, old_active) IS DISTINCT FROM (claimed, active)
        ))
        FOR NO KEY UPDATE SKIP LOCKED
    ), fixed AS (
        UPDATE venues v
        SET is_claimed = truth.claimed, is_active = truth.active, updated_at = now()
        FROM truth
        WHERE v.id = truth.id AND v.id IN (SELECT id FROM drifted)
          AND (v.is_claimed, v.is_active) IS DISTINCT FROM (truth.claimed, truth.active)
        RETURNING v.id, truth.old_claimed <> truth.claimed AS claimed_drift,
                  truth.old_active <> truth.active AS active_drift
    )
    SELECT (SELECT max(id) FROM chunk) AS last_id,
           (SELECT count(*) FROM chunk) AS scanned,
           (SELECT count(*) FROM fixed WHERE claimed_drift) AS claimed_fixed,
           (SELECT count(*) FROM fixed WHERE active_drift) AS active_fixed,
           (SELECT array_agg(id ORDER BY id) FROM fixed) AS fixed_ids
    """
)


def assert_purge_cannot_be_blocked(connection: Connection) -> None:
    """Refuse to purge while any foreign key to users would block the delete.

    A new table referencing users without ON DELETE CASCADE or SET NULL would make
    every purge chunk fail; this names it instead, so the fix is obvious.
    """
    blocking = connection.execute(BLOCKING_USER_FOREIGN_KEYS).all()
    if blocking:
        names = ", ".join(f"{row.table_name}.{row.conname}" for row in blocking)
        raise RuntimeError(
            f"foreign keys to users without ON DELETE CASCADE or SET NULL block the "
            f"purge: {names}; give each one a delete rule in a migration"
        )


@job("purge_deleted_users")
def purge_deleted_users(ctx: RunContext) -> JobResult:
    """Hard-delete users soft-deleted more than ``user_retention_days`` ago.

    Personal tables go with them (ON DELETE CASCADE: memories, watchers, referral
    codes, onboarding sessions); records the platform keeps stay with ``user_id``
    NULL: bookings lose their guest name and notes, send-queue rows their
    recipient and text (one still waiting to be sent ends DEAD, "recipient
    purged": there is nobody to send it to). A venue they owned is detached and
    becomes unclaimed at the next reconcile_venue_compound_state.
    """
    with ctx.engine.connect() as connection:
        assert_purge_cannot_be_blocked(connection)
    cutoff = ctx.now - timedelta(days=ctx.settings.user_retention_days)
    purged = bookings = messages = chunks = 0
    while True:
        checkpoint()
        with ctx.engine.begin() as connection:
            row = (
                connection.execute(
                    PURGE_USERS,
                    {"cutoff": cutoff, "limit": ctx.settings.job_chunk_size},
                )
                .one()
                ._mapping
            )
        chunks += 1
        purged += row["count"]
        bookings += row["bookings"]
        messages += row["messages"]
        if row["count"] < ctx.settings.job_chunk_size:
            break
    result = {
        "users_purged": purged,
        "bookings_anonymised": bookings,
        "messages_anonymised": messages,
        "chunks": chunks,
    }
    logger.info("deleted users purged", extra=logs.event("users_purged", **result))
    return result


@job("b2b_session_cleanup")
def b2b_session_cleanup(ctx: RunContext) -> JobResult:
    """Delete onboarding sessions that never completed and expired more than
    ``b2b_session_retention_days`` ago (ACTIVE or ABANDONED alike). Completed
    sessions are the venue's onboarding record and are kept."""
    cutoff = ctx.now - timedelta(days=ctx.settings.b2b_session_retention_days)
    done = change_by_range(
        ctx.engine,
        DELETE_EXPIRED_SESSIONS,
        {"cutoff": cutoff},
        ctx.settings.job_chunk_size,
        "b2b_sessions_deleted",
    )
    result = {"sessions_deleted": done.rows, "chunks": done.chunks}
    logger.info(
        "expired sessions deleted", extra=logs.event("b2b_session_cleanup", **result)
    )
    return result


@job("mark_abandoned_b2b_sessions")
def mark_abandoned_b2b_sessions(ctx: RunContext) -> JobResult:
    """ACTIVE onboarding sessions with no activity for ``b2b_abandon_after_hours``
    become ABANDONED (with ``abandoned_at``); the backend may still resume one
    before it expires."""
    cutoff = ctx.now - timedelta(hours=ctx.settings.b2b_abandon_after_hours)
    done = change_by_range(
        ctx.engine,
        MARK_ABANDONED,
        {"cutoff": cutoff, "now": ctx.now},
        ctx.settings.job_chunk_size,
        "b2b_sessions_abandoned",
    )
    result = {"sessions_abandoned": done.rows, "chunks": done.chunks}
    logger.info(
        "idle sessions abandoned", extra=logs.event("b2b_sessions_abandoned", **result)
    )
    return result


@job("expire_stale_referrals")
def expire_stale_referrals(ctx: RunContext) -> JobResult:
    """ACTIVE, unredeemed referral codes whose ``expires_at`` has passed become
    EXPIRED (with ``expired_at``). Redeemed codes are never touched."""
    done = change_by_range(
        ctx.engine,
        EXPIRE_REFERRALS,
        {"now": ctx.now},
        ctx.settings.job_chunk_size,
        "referrals_expired",
    )
    result = {"referrals_expired": done.rows, "chunks": done.chunks}
    logger.info(
        "stale referrals expired", extra=logs.event("referrals_expired", **result)
    )
    return result


@job("reconcile_venue_compound_state")
def reconcile_venue_compound_state(ctx: RunContext) -> JobResult:
    """Recompute each venue's derived flags from their sources of truth and fix drift.

    * ``is_claimed``: the venue has an owner whose account is not deleted (a
      soft-deleted owner no longer holds the venue; a purged one is already NULL).
    * ``is_active``: claimed, not suspended, and with a live subscription
      (trialing, active or past_due: Stripe is still collecting).

    Venues are walked in id order, a chunk per transaction; only drifted rows are
    written (``updated_at`` set), and each fix is logged with the venue id.
    """
    after, totals = 0, {"venues_scanned": 0, "claimed_fixed": 0, "active_fixed": 0}
    fixed = 0
    while True:
        checkpoint()
        with ctx.engine.begin() as connection:
            row = connection.execute(
                RECONCILE_VENUES,
                {
                    "after": after,
                    "limit": ctx.settings.job_chunk_size,
                    "live": list(LIVE_SUBSCRIPTION_STATUSES),
                },
            ).one()
        if not row.scanned:
            break
        totals["venues_scanned"] += row.scanned
        totals["claimed_fixed"] += row.claimed_fixed
        totals["active_fixed"] += row.active_fixed
        if row.fixed_ids:
            logger.info(
                "venue flags drifted",
                extra=logs.event("venue_drift_fixed", venue_ids=row.fixed_ids),
            )
            fixed += len(row.fixed_ids)
        after = row.last_id
        if row.scanned < ctx.settings.job_chunk_size:
            break
    result = {**totals, "venues_fixed": fixed}
    logger.info(
        "venue state reconciled", extra=logs.event("venues_reconciled", **result)
    )
    return result
