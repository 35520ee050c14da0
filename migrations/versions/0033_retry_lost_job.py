"""A lost job goes back to the queue, or ends failed when a newer job of its
queueing lock waits, in one statement that cannot fail on the lock.

Two paths put a job no worker runs back in the queue: the rescue (its worker
stopped heartbeating) and the give-back (a claim the worker gave up on took it).
Procrastinate's retry moves the job to ``todo``, which the queueing lock's unique
index forbids while a newer job of that lock waits; that job will do the lost
one's work, so the lost one ends failed. A check for the newer job beforehand
misses one committed after the check's snapshot, and the retry then raised
``unique_violation`` into the worker. ``agnt_retry_lost_job(job_id)`` tries the
retry in a subtransaction and ends the job failed when the index refuses it:
the index itself decides, whenever the newer job commits. Returns true when the
job was retried.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0033"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
CREATE FUNCTION agnt_retry_lost_job(p_job_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $fn$
-- Back to the queue now through Procrastinate's retry (events, lock, attempts),
-- or, when the queueing lock's unique index refuses it because a newer job of
-- that lock waits, ended failed: the newer job does its work. True if retried.
BEGIN
    BEGIN
        PERFORM procrastinate_retry_job_v2(p_job_id, now(), NULL, NULL, NULL);
        RETURN true;
    EXCEPTION WHEN unique_violation THEN
        NULL;
    END;
    PERFORM procrastinate_finish_job_v1(p_job_id, 'failed', false);
    RETURN false;
END
$fn$
"""
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION agnt_retry_lost_job(bigint)")
