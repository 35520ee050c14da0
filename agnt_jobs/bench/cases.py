"""What the job benchmark knows about each job: for a set-based job, the single
hand-written SQL statement that makes the same change as the job (no chunks, no
claims, no summary: the floor a job's own SQL is measured against), and for a job
whose cost follows a whole table by its contract, why.

A job with no case here is still run and measured (wall time, rows changed, peak
RSS); it just has no baseline. Jobs that send messages (through the send queue and
the gateway) or call venue agents have none: no single statement makes an HTTP
call.

The Stripe jobs (charge_unbilled_usage, monthly_invoice, reconcile_subscription_state,
retry_pending_fees) have no baseline either: their work is Stripe calls. Each runs
against a localstripe of its own with its due work made there first
(``agnt_jobs.datagen.stripe_due``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agnt_jobs import timeutil
from agnt_jobs.models.billing import LIVE_SUBSCRIPTION_STATUSES
from agnt_jobs.settings import Settings

Params = Callable[[Settings, datetime], dict[str, Any]]


@dataclass(frozen=True)
class JobCase:
    job_id: str
    #: One SQL statement making the job's change, over ``params``.
    baseline: str | None = None
    params: Params | None = None
    #: Why the job's cost follows a table rather than its due work, if it does.
    table_wide: str = ""


def _days(name: str) -> Params:
    return lambda s, at: {"cutoff": at - timedelta(days=getattr(s, name))}


PURGE_USERS = """
WITH doomed AS MATERIALIZED (
    SELECT id FROM users WHERE deleted_at < :cutoff FOR UPDATE
), anonymised AS (
    UPDATE bookings SET user_id = NULL, guest_name = NULL, notes = NULL
    WHERE user_id IN (SELECT id FROM doomed)
), messages AS (
    UPDATE send_queue
    SET user_id = NULL, recipient = '[purged]', body = '[purged]',
        status = CASE WHEN status IN ('PENDING', 'FAILED') THEN 'DEAD' ELSE status END,
        last_error = CASE WHEN status IN ('PENDING', 'FAILED') THEN 'recipient purged'
                          ELSE last_error END
    WHERE user_id IN (SELECT id FROM doomed)
)
DELETE FROM users WHERE id IN (SELECT id FROM doomed)
"""

RECONCILE_VENUES = """
UPDATE venues v SET is_claimed = t.claimed, is_active = t.active, updated_at = now()
FROM (
    SELECT v.id, o.id IS NOT NULL AS claimed,
           o.id IS NOT NULL AND v.suspended_at IS NULL AND EXISTS (
               SELECT 1 FROM subscriptions s
               WHERE s.venue_id = v.id AND s.status = ANY(:live)) AS active
    FROM venues v LEFT JOIN users o ON o.id = v.owner_user_id AND o.deleted_at IS NULL
) t
WHERE v.id = t.id AND (v.is_claimed, v.is_active) IS DISTINCT FROM (t.claimed, t.active)
"""

ROTATE_DELTA_LOG = """
WITH moved AS (
    DELETE FROM fleet_delta_log WHERE created_at < :before
    RETURNING id, created_at, agent_id, page_slug, action, title, content, meta
), archived AS (
    INSERT INTO fleet_delta_log_archive
        (id, created_at, agent_id, page_slug, action, title, content, meta)
    SELECT * FROM moved ON CONFLICT (id) DO NOTHING
)
DELETE FROM fleet_delta_log_archive WHERE created_at < :expire_before
"""

CLEAN_FINISHED_JOBS = """
WITH jobs AS (
    DELETE FROM procrastinate_jobs j
    WHERE j.status IN ('succeeded', 'failed', 'cancelled', 'aborted')
      AND NOT EXISTS (SELECT 1 FROM procrastinate_events e
                      WHERE e.job_id = j.id AND e.at >= :job_cutoff)
), runs AS (
    DELETE FROM job_runs WHERE started_at < :history_cutoff AND status <> 'running'
), ticks AS (
    DELETE FROM schedule_ticks t
    WHERE t.tick_at < :history_cutoff
      AND t.tick_at < (SELECT max(n.tick_at) FROM schedule_ticks n
                       WHERE n.schedule_id = t.schedule_id)
)
DELETE FROM schedule_workers w
WHERE NOT EXISTS (SELECT 1 FROM procrastinate_workers p WHERE p.id = w.worker_id)
"""

RESET_API_KEYS = """
WITH due AS (
    SELECT id, queries_today FROM api_keys
    WHERE last_reset_on IS NULL OR last_reset_on < :reset_on
    FOR UPDATE
), history AS (
    INSERT INTO api_key_daily_usage (api_key_id, usage_date, queries)
    SELECT id, :usage_date, queries_today FROM due WHERE queries_today > 0
    ON CONFLICT (api_key_id, usage_date)
    DO UPDATE SET queries = api_key_daily_usage.queries + EXCLUDED.queries
)
UPDATE api_keys SET queries_today = 0, last_reset_on = :reset_on
WHERE id IN (SELECT id FROM due)
"""


MARK_COMPLETED = """
UPDATE bookings SET status = 'COMPLETED', status_changed_at = :now
WHERE status = 'CONFIRMED' AND slot_end <= :now
"""

REAP_ENVELOPES = """
UPDATE a2a_envelopes
SET status = 'EXPIRED', status_changed_at = :now,
    last_error = 'TTL passed before the envelope was dispatched'
WHERE status = 'PENDING' AND expires_at <= :now
  AND (next_attempt_at IS NULL OR next_attempt_at <= :now)
"""

# Orphaned: no booking that still waits on the response's venue.
SWEEP_RESPONSES = """
UPDATE venue_responses AS r
SET status = 'CLOSED', close_reason = 'orphaned', resolved_at = :now
WHERE r.status = 'OPEN' AND r.received_at <= :cutoff
  AND NOT EXISTS (
      SELECT 1 FROM bookings AS b
      WHERE b.id = r.booking_id AND b.venue_id = r.venue_id
        AND b.status IN ('REQUESTED', 'PENDING_VENUE'))
"""

CREATE_REMINDERS = """
INSERT INTO reminders (booking_id, due_at)
SELECT b.id, greatest(b.slot_start - make_interval(mins => :lead), :now)
FROM bookings AS b
WHERE b.status = 'CONFIRMED' AND b.slot_start > :now AND b.slot_start <= :horizon
  AND NOT EXISTS (SELECT 1 FROM reminders AS r WHERE r.booking_id = b.id)
ON CONFLICT (booking_id) DO NOTHING
"""


def _rotate_params(s: Settings, at: datetime) -> dict[str, Any]:
    tz = timeutil.zone(s.business_timezone)
    return {
        "before": timeutil.iso_week(at, tz).start,
        "expire_before": timeutil.iso_week(at, tz, -s.delta_log_archive_weeks).start,
    }


def _reset_params(s: Settings, at: datetime) -> dict[str, Any]:
    reset_on = timeutil.local_date(at, timeutil.zone(s.business_timezone))
    return {"reset_on": reset_on, "usage_date": reset_on - timedelta(days=1)}


CASES: dict[str, JobCase] = {
    case.job_id: case
    for case in (
        JobCase(
            "purge_deleted_users",
            PURGE_USERS,
            _days("user_retention_days"),
        ),
        JobCase(
            "b2b_session_cleanup",
            "DELETE FROM b2b_onboarding_sessions "
            "WHERE status <> 'COMPLETED' AND expires_at < :cutoff",
            _days("b2b_session_retention_days"),
        ),
        JobCase(
            "mark_abandoned_b2b_sessions",
            "UPDATE b2b_onboarding_sessions SET status = 'ABANDONED', "
            "abandoned_at = :now "
            "WHERE status = 'ACTIVE' AND last_activity_at < :cutoff",
            lambda s, at: {
                "now": at,
                "cutoff": at - timedelta(hours=s.b2b_abandon_after_hours),
            },
        ),
        JobCase(
            "expire_stale_referrals",
            "UPDATE referral_codes SET status = 'EXPIRED', expired_at = :now "
            "WHERE status = 'ACTIVE' AND redeemed_at IS NULL AND expires_at <= :now",
            lambda s, at: {"now": at},
        ),
        JobCase(
            "reconcile_venue_compound_state",
            RECONCILE_VENUES,
            lambda s, at: {"live": list(LIVE_SUBSCRIPTION_STATUSES)},
            table_wide="recomputes every venue by contract",
        ),
        JobCase(
            "memory_eviction",
            "DELETE FROM memories WHERE NOT pinned "
            "AND coalesce(last_accessed_at, created_at) < :cutoff",
            _days("memory_keep_days"),
        ),
        JobCase(
            "dlq_cleanup",
            "DELETE FROM dead_letters "
            "WHERE resolved_at IS NOT NULL AND resolved_at < :cutoff",
            _days("dlq_retention_days"),
        ),
        JobCase(
            "prune_error_logs",
            "DELETE FROM error_log WHERE created_at < :cutoff",
            _days("error_log_retention_days"),
        ),
        JobCase("rotate_delta_log", ROTATE_DELTA_LOG, _rotate_params),
        JobCase("mark_completed_bookings", MARK_COMPLETED, lambda s, at: {"now": at}),
        JobCase("reap_stale_envelopes", REAP_ENVELOPES, lambda s, at: {"now": at}),
        JobCase(
            "sweep_orphaned_responses",
            SWEEP_RESPONSES,
            lambda s, at: {
                "now": at,
                "cutoff": at - timedelta(minutes=s.orphaned_response_grace_minutes),
            },
        ),
        JobCase(
            "booking_reminders",
            CREATE_REMINDERS,
            lambda s, at: {
                "now": at,
                "horizon": at + timedelta(hours=s.reminder_horizon_hours),
                "lead": s.reminder_lead_minutes,
            },
        ),
        JobCase(
            "clean_finished_jobs",
            CLEAN_FINISHED_JOBS,
            lambda s, at: {
                "job_cutoff": at - timedelta(days=s.job_retention_days),
                "history_cutoff": at - timedelta(days=s.run_history_retention_days),
            },
        ),
        JobCase(
            "reset_api_key_queries_today",
            RESET_API_KEYS,
            _reset_params,
            table_wide="walks every key: each is reset once a day",
        ),
        JobCase(
            "rebuild_entity_graph",
            table_wide="rebuilds the derived graph from every completed booking",
        ),
        JobCase(
            "platform_health_monitor",
            table_wide="measures the queue and backlogs as they are",
        ),
        JobCase(
            "re_engagement",
            table_wide="its candidates are every user idle for 14 days: a share of "
            "all users by contract",
        ),
        JobCase(
            "venue_daily_summary",
            table_wide="summarises every active venue with an owner, daily",
        ),
    )
}


def case(job_id: str) -> JobCase:
    return CASES.get(job_id) or JobCase(job_id)
