"""The trace context a job carries from whoever deferred it to its run:
``job_traces``, a W3C ``traceparent`` per job id, and ``agnt_defer`` taking one.

A table of ours rather than a column of ``procrastinate_jobs`` (Procrastinate's
schema, which its own migrations own) or a key in the job's arguments (which every
body would see and ``agnt_defer`` would refuse as an argument the job does not
take). A row is written in the statement that defers the job, so it commits or
rolls back with the job; it goes when the job's row goes. Only a deferrer with
traces on writes one: with traces off the table stays empty.

``agnt_defer`` gains a form with a fifth argument, ``traceparent`` (NULL for
none): it calls the four-argument form of 0017, unchanged, and records the
traceparent, refusing one that is not W3C's form. Four arguments or fewer still
call 0017's form alone.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOB_TRACES = """
CREATE TABLE job_traces (
    job_id bigint NOT NULL,
    traceparent text NOT NULL,
    CONSTRAINT pk_job_traces PRIMARY KEY (job_id),
    -- Named as an object tied to Procrastinate's tables, which the models leave
    -- out (migrations/env.py): the model cannot name procrastinate_jobs.
    CONSTRAINT agnt_procrastinate_job_traces_job_id_fkey FOREIGN KEY (job_id)
        REFERENCES procrastinate_jobs (id) ON DELETE CASCADE
)
"""

DEFER = r"""
CREATE FUNCTION agnt_defer(job text, args jsonb, at timestamptz,
                           queueing_lock text, traceparent text)
RETURNS bigint
LANGUAGE plpgsql AS $$
-- agnt_defer's four-argument form (what deferring checks and does), and the caller's trace context
-- carried to the run: the run's span is a child of the span ``traceparent`` names.
-- A job already waiting with the same queueing lock keeps the context it has.
DECLARE
    _id bigint;
BEGIN
    IF agnt_defer.traceparent IS NOT NULL
       AND agnt_defer.traceparent !~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
    THEN
        RAISE EXCEPTION 'traceparent % is not a W3C traceparent: give '
            '00-<32 hex trace id>-<16 hex span id>-<2 hex flags>, or NULL',
            quote_literal(agnt_defer.traceparent)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    _id := agnt_defer(agnt_defer.job, agnt_defer.args, agnt_defer.at,
                      agnt_defer.queueing_lock);
    IF agnt_defer.traceparent IS NOT NULL THEN
        INSERT INTO job_traces (job_id, traceparent)
        VALUES (_id, agnt_defer.traceparent)
        ON CONFLICT (job_id) DO NOTHING;
    END IF;
    RETURN _id;
END;
$$
"""


def upgrade() -> None:
    op.execute(JOB_TRACES)
    op.execute(DEFER)


def downgrade() -> None:
    op.execute("DROP FUNCTION agnt_defer(text, jsonb, timestamptz, text, text)")
    op.execute("DROP TABLE job_traces")
