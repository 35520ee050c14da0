"""Schedule registry: the schedules table, the per-tick decisions, each worker's
deployed registry, the functions workers call to decide a tick, and the audit views.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every decision about one schedule's ticks is taken under this lock, so workers
# decide each tick once and in order, and the last decided tick only moves forward.
_LOCK = "PERFORM pg_advisory_xact_lock(hashtextextended('agnt_schedule:' || _schedule_id, 0));"

FUNCTIONS = [
    """
CREATE FUNCTION agnt_schedule_last_tick(_schedule_id text) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    -- The last tick decided: our record of every decision, or Procrastinate's
    -- persisted periodic defer (it keeps the newest row per periodic task).
    SELECT GREATEST(
        (SELECT max(tick_at) FROM schedule_ticks WHERE schedule_id = _schedule_id),
        (SELECT to_timestamp(max(defer_timestamp)) FROM procrastinate_periodic_defers
          WHERE task_name = _schedule_id AND periodic_id = _schedule_id)
    )
$$
""",
    f"""
CREATE FUNCTION agnt_defer_schedule_tick(
    _schedule_id text, _queue text, _lock text, _queueing_lock text, _priority integer,
    _tick bigint, _retry_when_queued boolean, _worker_id bigint
) RETURNS TABLE (outcome text, job_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    _tick_at timestamptz := to_timestamp(_tick);
    _enabled boolean;
    _job_id bigint;
    _constraint text;
BEGIN
    {_LOCK}
    -- FOR SHARE: a pause (an UPDATE of this row) committed before this point is
    -- seen; one issued after it waits until this tick is decided.
    SELECT s.enabled INTO _enabled FROM schedules s WHERE s.id = _schedule_id FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'schedule % is not in the schedules table', _schedule_id
            USING HINT = 'workers add their schedules at start';
    END IF;
    IF _tick_at <= agnt_schedule_last_tick(_schedule_id) THEN
        RETURN QUERY SELECT 'handled'::text, NULL::bigint;
        RETURN;
    END IF;
    IF NOT _enabled THEN
        INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, reason, worker_id)
        VALUES (_schedule_id, _tick_at, 'skipped', 'paused', _worker_id);
        RETURN QUERY SELECT 'paused'::text, NULL::bigint;
        RETURN;
    END IF;
    BEGIN
        _job_id := procrastinate_defer_periodic_job_v2(
            _queue, _lock, _queueing_lock, _schedule_id, _priority, _schedule_id,
            _tick, jsonb_build_object('timestamp', _tick));
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS _constraint = CONSTRAINT_NAME;
        IF _constraint IS DISTINCT FROM 'procrastinate_jobs_queueing_lock_idx_v1' THEN
            RAISE;
        END IF;
        -- The previous run is still waiting: at most one waits per job.
        IF _retry_when_queued THEN
            RETURN QUERY SELECT 'queued'::text, NULL::bigint;
            RETURN;
        END IF;
        INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, reason, worker_id)
        VALUES (_schedule_id, _tick_at, 'skipped', 'queued', _worker_id);
        RETURN QUERY SELECT 'skipped'::text, NULL::bigint;
        RETURN;
    END;
    IF _job_id IS NULL THEN
        RETURN QUERY SELECT 'handled'::text, NULL::bigint;
        RETURN;
    END IF;
    INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, job_id, worker_id)
    VALUES (_schedule_id, _tick_at, 'deferred', _job_id, _worker_id);
    RETURN QUERY SELECT 'deferred'::text, _job_id;
END;
$$
""",
    f"""
CREATE FUNCTION agnt_record_missed_ticks(
    _schedule_id text, _first bigint, _last bigint, _worker_id bigint
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    _enabled boolean;
BEGIN
    {_LOCK}
    SELECT s.enabled INTO _enabled FROM schedules s WHERE s.id = _schedule_id;
    IF to_timestamp(_last) <= agnt_schedule_last_tick(_schedule_id) THEN
        RETURN false;
    END IF;
    INSERT INTO schedule_ticks (schedule_id, tick_at, missed_since, outcome, reason,
                                worker_id)
    VALUES (_schedule_id, to_timestamp(_last), to_timestamp(_first), 'skipped',
            CASE WHEN _enabled THEN 'misfire' ELSE 'paused' END, _worker_id);
    RETURN true;
END;
$$
""",
    """
CREATE FUNCTION agnt_late_after() RETURNS interval
LANGUAGE sql STABLE AS $$
    -- How late a tick may start before schedule_late_ticks lists it:
    -- SET agnt.late_after = '5 minutes' (session) or ALTER DATABASE ... SET.
    SELECT COALESCE(NULLIF(current_setting('agnt.late_after', true), ''),
                    '1 minute')::interval
$$
""",
]

VIEWS = [
    """
CREATE VIEW schedule_overview AS
SELECT s.id, s.description, s.cron, s.zone, s.queue, s.misfire_policy, s.enabled,
       s.has_body, s.first_seen, s.last_seen, s.removed_at, s.next_run_at,
       t.tick_at AS last_tick_at, t.outcome AS last_tick_outcome,
       t.reason AS last_tick_reason,
       r.job_id AS last_run_job_id, r.status AS last_run_status,
       r.started_at AS last_run_started_at, r.finished_at AS last_run_finished_at,
       r.finished_at - r.started_at AS last_run_duration,
       r.result AS last_run_result, r.error AS last_run_error
FROM schedules s
LEFT JOIN LATERAL (
    SELECT tick_at, outcome, reason FROM schedule_ticks
    WHERE schedule_id = s.id ORDER BY tick_at DESC LIMIT 1
) t ON true
LEFT JOIN LATERAL (
    SELECT job_id, status, started_at, finished_at, result, error FROM job_runs
    WHERE task_name = s.task_name ORDER BY started_at DESC LIMIT 1
) r ON true
""",
    """
CREATE VIEW job_run_audit AS
SELECT j.id AS job_id, j.task_name AS job_name, sch.id AS schedule_id,
       CASE WHEN t.job_id IS NULL THEN 'manual' ELSE 'schedule' END AS trigger,
       COALESCE(t.tick_at, CASE WHEN j.args->>'timestamp' ~ '^[0-9]+$'
                                THEN to_timestamp((j.args->>'timestamp')::bigint) END)
           AS scheduled_tick,
       ev.deferred_at, ev.started_at, ev.finished_at,
       ev.finished_at - ev.started_at AS duration,
       j.status::text AS status, j.attempts, j.queue_name,
       r.worker_name, COALESCE(r.worker_id, j.worker_id) AS worker_id,
       r.result, r.error
FROM procrastinate_jobs j
LEFT JOIN schedules sch ON sch.task_name = j.task_name
LEFT JOIN schedule_ticks t ON t.job_id = j.id
LEFT JOIN LATERAL (
    SELECT min(e.at) FILTER (WHERE e.type = 'deferred') AS deferred_at,
           max(e.at) FILTER (WHERE e.type = 'started') AS started_at,
           max(e.at) FILTER (WHERE e.type IN ('succeeded', 'failed', 'aborted',
                                              'cancelled')) AS finished_at
    FROM procrastinate_events e WHERE e.job_id = j.id
) ev ON true
LEFT JOIN LATERAL (
    SELECT worker_name, worker_id, result, error FROM job_runs
    WHERE job_runs.job_id = j.id ORDER BY attempt DESC LIMIT 1
) r ON true
""",
    """
CREATE VIEW schedule_late_ticks AS
SELECT t.schedule_id, t.tick_at, t.missed_since,
       CASE WHEN t.outcome = 'skipped' THEN t.reason ELSE 'late' END AS kind,
       t.decided_at - t.tick_at AS defer_delay,
       ev.started_at - t.tick_at AS start_delay,
       t.job_id
FROM schedule_ticks t
LEFT JOIN LATERAL (
    SELECT min(e.at) AS started_at FROM procrastinate_events e
    WHERE e.job_id = t.job_id AND e.type = 'started'
) ev ON true
WHERE t.outcome = 'skipped'
   OR t.decided_at - t.tick_at > agnt_late_after()
   OR ev.started_at - t.tick_at > agnt_late_after()
   OR (ev.started_at IS NULL AND now() - t.tick_at > agnt_late_after()
       AND EXISTS (SELECT 1 FROM procrastinate_jobs j
                   WHERE j.id = t.job_id AND j.status = 'todo'))
UNION ALL
-- No worker has decided a tick that is due: every worker is down or stuck.
SELECT s.id, s.next_run_at, NULL, 'overdue', now() - s.next_run_at, NULL, NULL
FROM schedules s
WHERE s.enabled AND s.has_body AND s.removed_at IS NULL
  AND s.next_run_at < now() - agnt_late_after()
""",
]


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("task_name", sa.Text(), nullable=False),
        sa.Column("cron", sa.Text(), nullable=False),
        sa.Column("zone", sa.Text(), nullable=False),
        sa.Column("queue", sa.Text(), nullable=False),
        sa.Column("misfire_policy", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("has_body", sa.Boolean(), nullable=False),
        sa.Column(
            "enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column(
            "first_seen",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_seen",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "misfire_policy IN ('skip', 'catch_up')", name=op.f("ck_schedules_policy")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    op.create_table(
        "schedule_ticks",
        sa.Column("schedule_id", sa.Text(), nullable=False),
        sa.Column("tick_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("missed_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("worker_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "decided_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(outcome = 'deferred' AND reason IS NULL AND job_id IS NOT NULL) OR "
            "(outcome = 'skipped' AND reason IN ('paused', 'queued', 'misfire'))",
            name=op.f("ck_schedule_ticks_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["schedules.id"],
            name=op.f("fk_schedule_ticks_schedule_id_schedules"),
        ),
        sa.PrimaryKeyConstraint(
            "schedule_id", "tick_at", name=op.f("pk_schedule_ticks")
        ),
    )
    op.create_index("ix_schedule_ticks_job_id", "schedule_ticks", ["job_id"])
    op.create_index("ix_schedule_ticks_tick_at", "schedule_ticks", ["tick_at"])
    op.create_table(
        "schedule_workers",
        sa.Column("worker_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hostname", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deployed", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_schedule_workers")),
    )
    for statement in FUNCTIONS + VIEWS:
        op.execute(statement)


def downgrade() -> None:
    for view in ("schedule_late_ticks", "job_run_audit", "schedule_overview"):
        op.execute(f"DROP VIEW {view}")
    op.execute("DROP FUNCTION agnt_late_after()")
    op.execute("DROP FUNCTION agnt_record_missed_ticks(text, bigint, bigint, bigint)")
    op.execute(
        "DROP FUNCTION agnt_defer_schedule_tick"
        "(text, text, text, text, integer, bigint, boolean, bigint)"
    )
    op.execute("DROP FUNCTION agnt_schedule_last_tick(text)")
    op.drop_table("schedule_workers")
    op.drop_table("schedule_ticks")
    op.drop_table("schedules")
