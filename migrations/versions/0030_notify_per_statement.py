"""A statement that inserts jobs wakes the listening workers once per queue, not
once per job.

Procrastinate's trigger notifies both channels (the queue's and any queue's) for
every inserted job, and every listening worker reads every notification: a batch
of 3,000 jobs deferred in one statement sent each of a fleet's thirty workers
6,000 notifications, all of which asked for the same thing (look at the queue).
The worker reads only the notification's type (``job_inserted``), so one per queue
and statement asks the same: this trigger, for each statement, sends one pair of
notifications per queue that received a waiting job, carrying the lowest of their
ids (the payload keeps Procrastinate's shape). A single job's defer sends what it
sent before. A later Procrastinate migration that creates its row trigger again
must be followed by dropping it (``tests/integration/test_new_job_notifications.py``
counts the notifications a batch sends).

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOTIFY_INSERTED = """
CREATE FUNCTION agnt_notify_jobs_inserted() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_notify('procrastinate_queue_v1#' || queued.queue_name, queued.payload),
            pg_notify('procrastinate_any_queue_v1', queued.payload)
    FROM (
        SELECT inserted.queue_name,
               json_build_object('type', 'job_inserted', 'job_id', min(inserted.id))::text
                   AS payload
        FROM inserted
        WHERE inserted.status = 'todo'
        GROUP BY inserted.queue_name
    ) AS queued;
    RETURN NULL;
END
$fn$
"""

PER_STATEMENT = """
CREATE TRIGGER agnt_jobs_notify_inserted
    AFTER INSERT ON procrastinate_jobs
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION agnt_notify_jobs_inserted()
"""

PER_ROW = """
CREATE TRIGGER procrastinate_jobs_notify_queue_job_inserted_v1
    AFTER INSERT ON procrastinate_jobs
    FOR EACH ROW WHEN ((new.status = 'todo'::procrastinate_job_status))
    EXECUTE PROCEDURE procrastinate_notify_queue_job_inserted_v1()
"""


def upgrade() -> None:
    op.execute(
        "DROP TRIGGER procrastinate_jobs_notify_queue_job_inserted_v1 "
        "ON procrastinate_jobs"
    )
    op.execute(NOTIFY_INSERTED)
    op.execute(PER_STATEMENT)


def downgrade() -> None:
    op.execute("DROP TRIGGER agnt_jobs_notify_inserted ON procrastinate_jobs")
    op.execute("DROP FUNCTION agnt_notify_jobs_inserted()")
    op.execute(PER_ROW)
