"""The worker's hot statements keep their plans in each server session.

Through PgBouncer in transaction pooling nothing the worker sends is prepared
(psycopg's ``prepare_threshold`` is off there: a statement prepared on one server
connection would be asked for on another), so the server planned the whole of
each job's end at every call, and the claim's ``agnt_run_timeout`` (a SQL
function, which Postgres plans afresh in every statement that calls it) at every
claim, straight or not. A PL/pgSQL function's statements are planned once per
server session and kept, whoever's transaction calls it: so

- ``agnt_finish_own_jobs(ends, worker_id)`` is the worker's end of a batch of
  jobs (the statement ``finish_own_jobs`` of ``agnt_jobs/db/sql/worker.sql`` sent
  before), and the worker's statement is now only its call;
- ``agnt_run_timeout(job_id, task_name)`` is the same query in PL/pgSQL.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINISH_OWN_JOBS = """
CREATE FUNCTION agnt_finish_own_jobs(p_ends jsonb, p_worker_id bigint)
RETURNS TABLE (id bigint, ended boolean, woken bigint)
LANGUAGE plpgsql AS $fn$
-- Procrastinate's finish transition (events, attempts) for each of a batch of
-- jobs still this worker's ('doing' under p_worker_id, locked for the statement),
-- and each run's end in job_runs, in one statement. p_ends is a JSON array of
-- {job_id, status, delete_job, attempt, run_status, result, error}; a run end
-- without run_status has no run to close. A run's end is recorded while the run
-- is still open, whoever holds its job now (the rescue closes the runs it takes).
-- Returns the jobs ended. A job that held a lock releases it: the first job
-- waiting on that lock wakes the listening workers as an inserted job does.
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH ends AS (
        SELECT * FROM jsonb_to_recordset(p_ends) AS e(
            job_id bigint, status procrastinate_job_status, delete_job boolean,
            attempt integer, run_status text, result jsonb, error text)
    ), runs AS (
        UPDATE job_runs AS run
        SET finished_at = now(), status = ends.run_status, result = ends.result,
            error = ends.error
        FROM ends
        WHERE run.job_id = ends.job_id AND run.attempt = ends.attempt
          AND run.status = 'running' AND ends.run_status IS NOT NULL
    ), own AS (
        SELECT job.id, job.lock, ends.status, ends.delete_job
        FROM procrastinate_jobs AS job JOIN ends ON ends.job_id = job.id
        WHERE job.status = 'doing' AND job.worker_id = p_worker_id
        ORDER BY job.id
        FOR UPDATE OF job
    ), finished AS (
        SELECT own.id, own.lock,
               procrastinate_finish_job_v1(own.id, own.status, own.delete_job)
                   IS NULL AS ended
        FROM own
    ), waiting AS (
        SELECT DISTINCT ON (finished.lock) job.queue_name,
               json_build_object('type', 'job_inserted', 'job_id', job.id)::text
                   AS payload
        FROM finished
        JOIN procrastinate_jobs job
            ON job.lock = finished.lock AND job.status = 'todo'
        WHERE finished.lock IS NOT NULL
          AND (job.scheduled_at IS NULL OR job.scheduled_at <= now())
        ORDER BY finished.lock, job.priority DESC, job.id
    ), woken AS (
        SELECT pg_notify('procrastinate_queue_v1#' || waiting.queue_name,
                         waiting.payload),
               pg_notify('procrastinate_any_queue_v1', waiting.payload)
        FROM waiting
    )
    SELECT finished.id, finished.ended, (SELECT count(*) FROM woken)
    FROM finished;
END
$fn$
"""

RUN_TIMEOUT_PLPGSQL = """
CREATE OR REPLACE FUNCTION agnt_run_timeout(p_job_id bigint, p_task_name text)
RETURNS interval LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    RETURN COALESCE(
        (SELECT s.timeout FROM schedule_ticks t
         JOIN schedule_rows s ON s.id = t.schedule_id
         WHERE t.job_id = p_job_id LIMIT 1),
        (SELECT s.timeout FROM schedule_rows s WHERE s.id = p_task_name));
END
$fn$
"""

RUN_TIMEOUT_SQL = """
CREATE OR REPLACE FUNCTION agnt_run_timeout(p_job_id bigint, p_task_name text)
RETURNS interval LANGUAGE sql STABLE AS $$
    SELECT COALESCE(
        (SELECT s.timeout FROM schedule_ticks t
         JOIN schedule_rows s ON s.id = t.schedule_id
         WHERE t.job_id = p_job_id LIMIT 1),
        (SELECT s.timeout FROM schedule_rows s WHERE s.id = p_task_name))
$$
"""


def upgrade() -> None:
    op.execute(FINISH_OWN_JOBS)
    op.execute(RUN_TIMEOUT_PLPGSQL)


def downgrade() -> None:
    op.execute(RUN_TIMEOUT_SQL)
    op.execute("DROP FUNCTION agnt_finish_own_jobs(jsonb, bigint)")
