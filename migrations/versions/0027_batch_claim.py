"""Claiming jobs in batches: ``agnt_claim_jobs(queues, worker_id, n)`` takes up to
``n`` jobs in one statement, the ones ``procrastinate_fetch_job_v2`` would take
called ``n`` times in a row: waiting, due, in one of the queues (NULL: any), and
for a job with a lock, the first waiting job of that lock (highest priority, then
lowest id) while no job of that lock runs; in priority then id order; rows other
workers are claiming are skipped. At most one job per lock is ever eligible, so a
batch never holds two jobs of one lock (Procrastinate's unique index on a running
lock stays the guard).

``agnt_run_timeout(job_id, task_name)`` is how long a run may take (its tick's
schedule's timeout, else its job's own), one definition for the worker that reads
it per job and the claim that reads it per batch.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


CLAIM_JOBS = """
CREATE FUNCTION agnt_claim_jobs(
    target_queue_names character varying[], p_worker_id bigint, n integer
) RETURNS SETOF procrastinate_jobs
LANGUAGE plpgsql AS $fn$
BEGIN
    -- Planned afresh at every call with the values given (EXECUTE ... USING): a
    -- plan made once for any n and any queues cannot read the first n jobs off
    -- the priority index, and sorts every waiting job instead (hundreds of
    -- milliseconds with a million waiting, against one with a thousand).
    RETURN QUERY EXECUTE $claim$
    WITH candidate AS (
        SELECT jobs.id
        FROM procrastinate_jobs AS jobs
        WHERE jobs.status = 'todo'
          AND ($1 IS NULL OR jobs.queue_name = ANY($1))
          AND (jobs.scheduled_at IS NULL OR jobs.scheduled_at <= now())
          AND NOT EXISTS (
              SELECT 1 FROM procrastinate_jobs AS other
              WHERE jobs.lock IS NOT NULL
                AND other.lock = jobs.lock
                AND (other.status = 'doing'
                     OR (other.status = 'todo'
                         AND (other.priority > jobs.priority
                              OR (other.priority = jobs.priority
                                  AND other.id < jobs.id))))
          )
        ORDER BY jobs.priority DESC, jobs.id ASC
        LIMIT $3
        FOR UPDATE OF jobs SKIP LOCKED
    )
    UPDATE procrastinate_jobs AS job
    SET status = 'doing', worker_id = $2
    FROM candidate
    WHERE job.id = candidate.id
    RETURNING job.*
    $claim$ USING target_queue_names, p_worker_id, n;
END
$fn$
"""


def upgrade() -> None:
    op.execute(CLAIM_JOBS)
    op.execute(
        """
CREATE FUNCTION agnt_run_timeout(p_job_id bigint, p_task_name text)
RETURNS interval LANGUAGE sql STABLE AS $$
    SELECT COALESCE(
        (SELECT s.timeout FROM schedule_ticks t
         JOIN schedule_rows s ON s.id = t.schedule_id
         WHERE t.job_id = p_job_id LIMIT 1),
        (SELECT s.timeout FROM schedule_rows s WHERE s.id = p_task_name))
$$
"""
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION agnt_run_timeout(bigint, text)")
    op.execute("DROP FUNCTION agnt_claim_jobs(character varying[], bigint, integer)")
