"""Defer a job from any transaction: ``agnt_defer(job, args, at, queueing_lock)``.

The backend defers a job in the transaction that writes the data the job is about
(a booking and the run that reminds its user): the job commits or rolls back with
it. Postgres knows which jobs exist, and with which queue, lock and queueing lock,
from ``declared_jobs``, which every worker writes at start from the App's tasks
(``agnt_declare_jobs``), as it declares the schedules; a job the deployed code
dropped is marked removed. ``agnt_defer`` refuses an unknown or removed job and
arguments that are not a JSON object of the job's arguments, each with a message
that says what to do.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DECLARE_JOBS = """
CREATE FUNCTION agnt_declare_jobs(_jobs jsonb) RETURNS SETOF text
LANGUAGE plpgsql AS $$
-- A deploy: every job of the code (a JSON array of objects with id, queue, lock,
-- queueing_lock and arguments, the names its task takes) is inserted or refreshed;
-- jobs the code no longer has are marked removed, and their ids returned. Sorted,
-- so that workers starting together lock the rows in the same order.
BEGIN
    INSERT INTO declared_jobs (id, queue, lock, queueing_lock, arguments)
    SELECT j.id, j.queue, j.lock, j.queueing_lock,
           ARRAY(SELECT jsonb_array_elements_text(j.arguments))
    FROM jsonb_to_recordset(_jobs)
         AS j(id text, queue text, lock text, queueing_lock text, arguments jsonb)
    ORDER BY j.id
    ON CONFLICT (id) DO UPDATE
    SET queue = EXCLUDED.queue, lock = EXCLUDED.lock,
        queueing_lock = EXCLUDED.queueing_lock, arguments = EXCLUDED.arguments,
        last_seen = now(), removed_at = NULL;
    RETURN QUERY
    UPDATE declared_jobs SET removed_at = now()
    WHERE removed_at IS NULL
      AND NOT id IN (SELECT e ->> 'id' FROM jsonb_array_elements(_jobs) e)
    RETURNING id;
END;
$$
"""

# How many times agnt_defer tries again when the waiting job that holds its
# queueing lock starts running between its insert and its look at that job.
_ATTEMPTS = 5

DEFER = f"""
CREATE FUNCTION agnt_defer(job text, args jsonb DEFAULT '{{}}',
                           at timestamptz DEFAULT NULL,
                           queueing_lock text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
-- Defer a run of ``job`` in the caller's transaction: it exists if and only if the
-- transaction commits. The queue and the lock are the job's own (declared_jobs);
-- the queueing lock is the caller's, else the job's own for a run now and none for
-- a run ``at`` a time (a run waiting for later does not hold back the schedule's
-- ticks). ``at`` is also the run's tick (args.timestamp) unless args give one.
--
-- Returns the id of the job that will run: the new one or, when a job with the same
-- queueing lock is already waiting, that one. That job is then locked FOR SHARE
-- until the caller's transaction ends: a worker's fetch skips it meanwhile, so it
-- starts after the caller's data is committed (or rolled back), never before.
DECLARE
    _declared declared_jobs%ROWTYPE;
    _args jsonb := COALESCE(agnt_defer.args, '{{}}'::jsonb);
    _at timestamptz := agnt_defer.at;
    _queueing_lock text := agnt_defer.queueing_lock;
    _extra text;
    _id bigint;
BEGIN
    SELECT * INTO _declared FROM declared_jobs d WHERE d.id = agnt_defer.job;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown job %: SELECT id FROM declared_jobs WHERE '
            'removed_at IS NULL lists the jobs (a worker declares them at start)',
            quote_nullable(agnt_defer.job)
            USING ERRCODE = 'no_data_found';
    END IF;
    IF _declared.removed_at IS NOT NULL THEN
        RAISE EXCEPTION 'job % is not in the deployed code (removed %): SELECT id '
            'FROM declared_jobs WHERE removed_at IS NULL lists the jobs',
            quote_literal(_declared.id), _declared.removed_at
            USING ERRCODE = 'no_data_found';
    END IF;
    IF jsonb_typeof(_args) <> 'object' THEN
        RAISE EXCEPTION 'the arguments of % must be a JSON object, e.g. ''{{}}'', '
            'not a JSON %', _declared.id, jsonb_typeof(_args)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF _args <> '{{}}'::jsonb THEN
        SELECT string_agg(quote_literal(k), ', ' ORDER BY k) INTO _extra
        FROM jsonb_object_keys(_args) k WHERE NOT k = ANY(_declared.arguments);
    END IF;
    IF _extra IS NOT NULL THEN
        RAISE EXCEPTION 'job % takes no argument %: its arguments are %',
            _declared.id, _extra,
            COALESCE(NULLIF(array_to_string(_declared.arguments, ', '), ''), 'none')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Every job's task reads timestamp as its tick, in whole Unix seconds.
    IF _args ? 'timestamp' AND NOT (jsonb_typeof(_args -> 'timestamp') = 'number'
                                    AND _args ->> 'timestamp' ~ '^[0-9]+$') THEN
        RAISE EXCEPTION 'the timestamp of % must be whole Unix seconds, e.g. %, '
            'not %', _declared.id, extract(epoch FROM date_trunc('second', now()))::bigint,
            _args -> 'timestamp'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF _at IS NOT NULL AND NOT _args ? 'timestamp'
       AND 'timestamp' = ANY(_declared.arguments) THEN
        _args := _args || jsonb_build_object('timestamp',
                                             floor(extract(epoch FROM _at))::bigint);
    END IF;
    IF _queueing_lock IS NULL AND _at IS NULL THEN
        _queueing_lock := _declared.queueing_lock;
    END IF;
    -- A plain INSERT, as procrastinate_defer_jobs_v1 does (Procrastinate's triggers
    -- write the deferred event and wake the workers at commit), with ON CONFLICT
    -- rather than catching unique_violation: an exception block would open a
    -- subtransaction in the caller's transaction at every call.
    FOR _attempt IN 1 .. {_ATTEMPTS} LOOP
        INSERT INTO procrastinate_jobs AS j
            (queue_name, task_name, lock, queueing_lock, args, scheduled_at)
        VALUES (_declared.queue, _declared.id, _declared.lock, _queueing_lock, _args,
                _at)
        ON CONFLICT (queueing_lock) WHERE status = 'todo' DO NOTHING
        RETURNING j.id INTO _id;
        IF _id IS NOT NULL THEN
            RETURN _id;
        END IF;
        -- A job with this queueing lock waits: it does the work. Gone already
        -- (a worker took it since), the insert is tried again.
        SELECT j.id INTO _id FROM procrastinate_jobs j
        WHERE j.queueing_lock = _queueing_lock AND j.status = 'todo'
        FOR SHARE;
        IF FOUND THEN
            RETURN _id;
        END IF;
    END LOOP;
    -- Only a snapshot older than the waiting job (REPEATABLE READ) gets here.
    RAISE EXCEPTION 'a job with queueing lock % is waiting but this transaction''s '
        'snapshot cannot see it: retry the transaction', quote_literal(_queueing_lock)
        USING ERRCODE = 'serialization_failure';
END;
$$
"""


def upgrade() -> None:
    op.create_table(
        "declared_jobs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("queue", sa.Text(), nullable=False),
        sa.Column("lock", sa.Text(), nullable=True),
        sa.Column("queueing_lock", sa.Text(), nullable=True),
        sa.Column(
            "arguments",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_declared_jobs")),
    )
    op.execute(DECLARE_JOBS)
    op.execute(DEFER)


def downgrade() -> None:
    op.execute("DROP FUNCTION agnt_defer(text, jsonb, timestamptz, text)")
    op.execute("DROP FUNCTION agnt_declare_jobs(jsonb)")
    op.drop_table("declared_jobs")
