"""Runs an operator controls: a run past its schedule's timeout ends ``timed_out``,
one an operator stopped ends ``cancelled``; a waiting or running run is cancelled,
a failed, timed-out or cancelled one retried, singly or in bulk, from SQL
(``agnt_cancel_run``, ``agnt_retry_run``, ``agnt_retry_runs``), the CLI or the
admin view. Every such request is a row of ``job_run_actions``.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = "'running', 'succeeded', 'failed', 'aborted', 'stopped'"

# Who asks, when the caller does not say: the database role and application_name.
_WHO = """COALESCE(NULLIF(_by, ''), session_user || ' (' || COALESCE(
        NULLIF(current_setting('application_name', true), ''),
        'no application_name') || ')')"""

FUNCTIONS = [
    f"""
CREATE FUNCTION agnt_cancel_run(_job_id bigint, _by text DEFAULT NULL,
                                _source text DEFAULT 'sql')
RETURNS text
LANGUAGE plpgsql AS $$
-- Cancel a run: a waiting one is cancelled at once ('cancelled'); a running one is
-- asked to stop at its next checkpoint ('cancelling'), and ends cancelled.
DECLARE
    _status text;
BEGIN
    SELECT status::text INTO _status FROM procrastinate_jobs WHERE id = _job_id
        FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no run with job id %', _job_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'SELECT job_id FROM job_run_audit shows the runs';
    END IF;
    IF _status NOT IN ('todo', 'doing') THEN
        RAISE EXCEPTION 'job % has already ended (%): nothing to cancel', _job_id,
            _status USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    PERFORM procrastinate_cancel_job_v1(_job_id, true, false);
    INSERT INTO job_run_actions (job_id, action, requested_by, source)
    VALUES (_job_id, 'cancel', {_WHO}, _source);
    RETURN CASE _status WHEN 'todo' THEN 'cancelled' ELSE 'cancelling' END;
END;
$$
""",
    f"""
CREATE FUNCTION agnt_retry_run(_job_id bigint, _by text DEFAULT NULL,
                               _source text DEFAULT 'sql')
RETURNS bigint
LANGUAGE plpgsql AS $$
-- Run again a run that failed, timed out or was cancelled: a new job with the same
-- job, arguments (its tick), queue, priority and lock; its id. Without the
-- queueing lock, so that retrying several ticks of a job queues each. A run whose
-- retry is waiting, running or succeeded is not retried twice.
DECLARE
    _job procrastinate_jobs%ROWTYPE;
    _previous bigint;
    _previous_status text;
    _new_id bigint;
BEGIN
    SELECT * INTO _job FROM procrastinate_jobs WHERE id = _job_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no run with job id %', _job_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'SELECT job_id FROM job_run_audit shows the runs';
    END IF;
    IF _job.status NOT IN ('failed', 'cancelled', 'aborted') THEN
        RAISE EXCEPTION 'job % is %: only a failed, timed-out or cancelled run is '
            'retried', _job_id, _job.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT a.new_job_id, j.status::text INTO _previous, _previous_status
    FROM job_run_actions a JOIN procrastinate_jobs j ON j.id = a.new_job_id
    WHERE a.job_id = _job_id AND a.action = 'retry'
      AND j.status IN ('todo', 'doing', 'succeeded')
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'job % was already retried as job % (%)', _job_id,
            _previous, _previous_status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    _new_id := (procrastinate_defer_jobs_v1(ARRAY[ROW(
        _job.queue_name, _job.task_name, _job.priority, _job.lock, NULL,
        _job.args, NULL)::procrastinate_job_to_defer_v1]))[1];
    INSERT INTO job_run_actions (job_id, action, requested_by, source, new_job_id)
    VALUES (_job_id, 'retry', {_WHO}, _source, _new_id);
    RETURN _new_id;
END;
$$
""",
    """
CREATE FUNCTION agnt_retry_runs(_task_name text, _since timestamptz,
                                _until timestamptz, _by text DEFAULT NULL,
                                _source text DEFAULT 'sql')
RETURNS TABLE (job_id bigint, new_job_id bigint)
LANGUAGE plpgsql AS $$
-- Retry every run of a job that ended failed, timed out or cancelled in
-- [_since, _until) and has no retry waiting, running or succeeded; oldest first.
DECLARE
    _run bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM schedules s WHERE s.task_name = _task_name)
       AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j
                       WHERE j.task_name = _task_name) THEN
        RAISE EXCEPTION 'unknown job %', quote_literal(_task_name)
            USING ERRCODE = 'no_data_found',
                  HINT = 'agnt-jobs schedules list shows the jobs';
    END IF;
    FOR _run IN
        SELECT j.id FROM procrastinate_jobs j
        WHERE j.task_name = _task_name
          AND j.status IN ('failed', 'cancelled', 'aborted')
          AND EXISTS (SELECT 1 FROM procrastinate_events e
                      WHERE e.job_id = j.id
                        AND e.type IN ('failed', 'cancelled', 'aborted')
                        AND e.at >= _since AND e.at < _until)
          AND NOT EXISTS (SELECT 1 FROM job_run_actions a
                          JOIN procrastinate_jobs r ON r.id = a.new_job_id
                          WHERE a.job_id = j.id AND a.action = 'retry'
                            AND r.status IN ('todo', 'doing', 'succeeded'))
        ORDER BY j.id
    LOOP
        job_id := _run;
        new_job_id := agnt_retry_run(_run, _by, _source);
        RETURN NEXT;
    END LOOP;
END;
$$
""",
]

# The audit view: a run's status is its history's where that knows more than the
# queue (a timeout, a cancellation); a run deferred for later shows when.
_HISTORY_STATUS = """CASE WHEN r.status IN ('timed_out', 'cancelled') AND j.status <> 'doing'
            THEN r.status ELSE j.status::text END"""

AUDIT = """
CREATE OR REPLACE VIEW job_run_audit AS
SELECT j.id AS job_id, j.task_name AS job_name,
       COALESCE(t.schedule_id,
                (SELECT s.id FROM schedules s WHERE s.id = j.task_name))
           AS schedule_id,
       CASE WHEN t.job_id IS NULL THEN 'manual' ELSE 'schedule' END AS trigger,
       COALESCE(t.tick_at, CASE WHEN j.args->>'timestamp' ~ '^[0-9]+$'
                                THEN to_timestamp((j.args->>'timestamp')::bigint) END)
           AS scheduled_tick,
       ev.deferred_at, ev.started_at, ev.finished_at,
       ev.finished_at - ev.started_at AS duration,
       {status} AS status,
       j.attempts, j.queue_name,
       r.worker_name, COALESCE(r.worker_id, j.worker_id) AS worker_id,
       r.result, r.error{columns}
FROM procrastinate_jobs j
LEFT JOIN schedule_ticks t ON t.job_id = j.id
LEFT JOIN LATERAL (
    SELECT min(e.at) FILTER (WHERE e.type = 'deferred') AS deferred_at,
           max(e.at) FILTER (WHERE e.type = 'started') AS started_at,
           max(e.at) FILTER (WHERE e.type IN ('succeeded', 'failed', 'aborted',
                                              'cancelled')) AS finished_at
    FROM procrastinate_events e WHERE e.job_id = j.id
) ev ON true
LEFT JOIN LATERAL (
    SELECT worker_name, worker_id, status, result, error FROM job_runs
    WHERE job_runs.job_id = j.id ORDER BY attempt DESC LIMIT 1
) r ON true
"""


def upgrade() -> None:
    op.drop_constraint(op.f("ck_job_runs_status"), "job_runs", type_="check")
    op.create_check_constraint(
        op.f("ck_job_runs_status"),
        "job_runs",
        f"status IN ({_STATUSES}, 'timed_out', 'cancelled')",
    )
    op.create_table(
        "job_run_actions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("new_job_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "action IN ('cancel', 'retry', 'run_at')",
            name=op.f("ck_job_run_actions_action"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_run_actions")),
    )
    op.create_index("ix_job_run_actions_job_id", "job_run_actions", ["job_id"])
    for statement in FUNCTIONS:
        op.execute(statement)
    op.execute(AUDIT.format(status=_HISTORY_STATUS, columns=", j.scheduled_at"))


def downgrade() -> None:
    op.execute("DROP VIEW job_run_audit")
    op.execute(AUDIT.format(status="j.status::text", columns=""))
    op.execute(
        "DROP FUNCTION agnt_retry_runs(text, timestamptz, timestamptz, text, text)"
    )
    op.execute("DROP FUNCTION agnt_retry_run(bigint, text, text)")
    op.execute("DROP FUNCTION agnt_cancel_run(bigint, text, text)")
    op.drop_index("ix_job_run_actions_job_id", table_name="job_run_actions")
    op.drop_table("job_run_actions")
    op.execute(
        "UPDATE job_runs SET status = CASE status WHEN 'timed_out' THEN 'failed' "
        "ELSE 'aborted' END WHERE status IN ('timed_out', 'cancelled')"
    )
    op.drop_constraint(op.f("ck_job_runs_status"), "job_runs", type_="check")
    op.create_check_constraint(
        op.f("ck_job_runs_status"), "job_runs", f"status IN ({_STATUSES})"
    )
