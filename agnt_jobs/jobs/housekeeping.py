"""Housekeeping: retention of memories, dead letters and the error log, the weekly
dead-letter report, and rotation of the fleet delta log into its archive.

Every delete runs in chunks of ``job_chunk_size`` rows, each chunk one short
transaction that locks only its own rows: a purge of millions of rows never holds
a long lock, and two copies share the work. The retention deletes take a range of
times per chunk and wait at most a moment for a row held elsewhere
(``agnt_jobs.walk.change_by_range``); the rotation claims its rows ``FOR UPDATE
SKIP LOCKED`` and addresses them by ``ctid`` (see ``agnt_jobs.walk`` for why).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from agnt_jobs import logs, timeutil
from agnt_jobs.delivery import alerts
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job
from agnt_jobs.walk import RangeChange, change_by_range, run_chunked

logger = logging.getLogger(__name__)

EVICT_MEMORIES = RangeChange(
    "memories",
    "NOT pinned AND coalesce(last_accessed_at, created_at) < :cutoff",
    order_by="coalesce(last_accessed_at, created_at)",
)

DELETE_RESOLVED_LETTERS = RangeChange(
    "dead_letters",
    "resolved_at IS NOT NULL AND resolved_at < :cutoff",
    order_by="resolved_at",
)

PRUNE_ERROR_LOG = RangeChange(
    "error_log", "created_at < :cutoff", order_by="created_at"
)

# One statement moves a chunk: the rows leave the live log and enter the archive
# in the same transaction, so a reader of both tables in one statement (or one
# snapshot) sees every entry exactly once, before, during and after rotation.
ARCHIVE_DELTAS = sa.text(
    """
    WITH moved AS (
        DELETE FROM fleet_delta_log WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM fleet_delta_log
            WHERE created_at < :before
            ORDER BY id
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ))
        RETURNING id, created_at, agent_id, page_slug, action, title, content, meta
    ), archived AS (
        INSERT INTO fleet_delta_log_archive
            (id, created_at, agent_id, page_slug, action, title, content, meta)
        SELECT id, created_at, agent_id, page_slug, action, title, content, meta
        FROM moved
        ON CONFLICT (id) DO NOTHING
        RETURNING 1
    )
    SELECT count(*) FROM moved
    """
)

EXPIRE_ARCHIVE = RangeChange(
    "fleet_delta_log_archive", "created_at < :before", order_by="created_at"
)

WEEK_FIGURES = sa.text(
    """
    WITH week AS (
        SELECT source, error_class, resolved_at FROM dead_letters
        WHERE created_at >= :start AND created_at < :end
    ), breakdown AS (
        SELECT source, error_class, count(*) AS total,
               count(*) FILTER (WHERE resolved_at IS NULL) AS unresolved
        FROM week GROUP BY source, error_class
    )
    SELECT
        (SELECT count(*) FROM week) AS total,
        (SELECT count(*) FROM week WHERE resolved_at IS NULL) AS unresolved,
        (SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL)
            AS unresolved_all,
        (SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'source', source, 'error_class', error_class,
                    'total', total, 'unresolved', unresolved)
                ORDER BY total DESC, source, error_class), '[]'::jsonb)
         FROM breakdown) AS breakdown,
        (SELECT (data ->> 'total')::int FROM alerts
         WHERE idempotency_key = :previous_key) AS previous_total
    """
)


def _chunked_delete(
    ctx: RunContext, retention: RangeChange, cutoff: object, action: str
) -> JobResult:
    done = change_by_range(
        ctx.engine, retention, {"cutoff": cutoff}, ctx.settings.job_chunk_size, action
    )
    result = {"deleted": done.rows, "chunks": done.chunks}
    logger.info("rows deleted", extra=logs.event(action, **result))
    return result


@job("memory_eviction")
def memory_eviction(ctx: RunContext) -> JobResult:
    """Delete unpinned memory entries not used for ``memory_keep_days`` (last
    access, or creation for one never read). Pinned entries are kept forever."""
    cutoff = ctx.now - timedelta(days=ctx.settings.memory_keep_days)
    return _chunked_delete(ctx, EVICT_MEMORIES, cutoff, "memories_evicted")


@job("dlq_cleanup")
def dlq_cleanup(ctx: RunContext) -> JobResult:
    """Delete dead letters resolved more than ``dlq_retention_days`` ago.
    Unresolved letters are never deleted, however old."""
    cutoff = ctx.now - timedelta(days=ctx.settings.dlq_retention_days)
    return _chunked_delete(ctx, DELETE_RESOLVED_LETTERS, cutoff, "dlq_cleaned")


@job("prune_error_logs")
def prune_error_logs(ctx: RunContext) -> JobResult:
    """Delete error-log rows older than ``error_log_retention_days``."""
    cutoff = ctx.now - timedelta(days=ctx.settings.error_log_retention_days)
    return _chunked_delete(ctx, PRUNE_ERROR_LOG, cutoff, "error_log_pruned")


@job("rotate_delta_log")
def rotate_delta_log(ctx: RunContext) -> JobResult:
    """Move fleet delta log entries from before the current WITA ISO week (of the
    tick) into the archive, then drop archived entries older than the
    ``delta_log_archive_weeks`` weeks before it.

    Each chunk is one statement (DELETE ... RETURNING feeding the INSERT), so an
    entry is always in exactly one of the two tables for any reader.
    """
    tz = timeutil.zone(ctx.settings.business_timezone)
    week = timeutil.iso_week(ctx.tick, tz)
    oldest_kept = timeutil.iso_week(ctx.tick, tz, -ctx.settings.delta_log_archive_weeks)
    moved = run_chunked(
        ctx.engine,
        ARCHIVE_DELTAS,
        {"before": week.start},
        ctx.settings.job_chunk_size,
        "delta_log_archived",
    )
    expired = change_by_range(
        ctx.engine,
        EXPIRE_ARCHIVE,
        {"before": oldest_kept.start},
        ctx.settings.job_chunk_size,
        "delta_archive_expired",
    )
    result = {
        "week": week.label,
        "archived": moved.rows,
        "archive_expired": expired.rows,
        "chunks": moved.chunks + expired.chunks,
    }
    logger.info("delta log rotated", extra=logs.event("delta_log_rotated", **result))
    return result


@job("dlq_weekly_report")
def dlq_weekly_report(ctx: RunContext) -> JobResult:
    """Post last WITA ISO week's dead-letter figures to the alerts webhook, once
    per week.

    Figures: letters created that week by source and error class (total and still
    unresolved), the week's total and unresolved, all unresolved letters, and the
    trend against the previous report's total. The trend comes from the previous
    report (stored in its alert) rather than from dead_letters, because
    dlq_cleanup has deleted most of that week's resolved letters by now. The
    report is queued under ``dlq_weekly:<week>`` with its figures frozen, so a
    re-run or a webhook outage re-sends the same report, never a second one.
    """
    tz = timeutil.zone(ctx.settings.business_timezone)
    week = timeutil.iso_week(ctx.tick, tz, -1)
    previous = timeutil.iso_week(ctx.tick, tz, -2)
    key = f"dlq_weekly:{week.label}"
    with ctx.engine.begin() as connection:
        figures = connection.execute(
            WEEK_FIGURES,
            {
                "start": week.start,
                "end": week.end,
                "previous_key": f"dlq_weekly:{previous.label}",
            },
        ).one()
        data = {
            "week": week.label,
            "total": figures.total,
            "unresolved": figures.unresolved,
            "unresolved_all": figures.unresolved_all,
            "by_source": figures.breakdown,
            "previous_total": figures.previous_total,
            "change": None
            if figures.previous_total is None
            else figures.total - figures.previous_total,
        }
        queued = alerts.queue(connection, key, "dlq_weekly", _report_text(data), data)
    delivered = alerts.deliver_pending(ctx.engine, ctx.settings)
    result = {"week": week.label, "report_queued": int(queued), **delivered}
    logger.info("dlq report", extra=logs.event("dlq_weekly_report", **result))
    return result


def _report_text(data: dict[str, Any]) -> str:
    change = data["change"]
    trend = "no previous report" if change is None else f"{change:+d} vs week before"
    lines = [
        f"Dead letters {data['week']}: {data['total']} new ({trend}), "
        f"{data['unresolved']} of them unresolved; {data['unresolved_all']} "
        "unresolved in all."
    ]
    for row in data["by_source"]:
        lines.append(
            f"- {row['source']} / {row['error_class']}: {row['total']} "
            f"({row['unresolved']} unresolved)"
        )
    return "\n".join(lines)
