"""One tick-outcome vocabulary (docs/glossary.md): a tick decided is stored
``deferred`` or ``skipped`` with a reason among ``paused``, ``queued``, ``missed``
(was ``misfire``: the policy is the misfire policy, the ticks it gives up are
missed) and ``not_configured``. The deciding functions return that outcome and
reason, or a word for a tick they did not decide: ``already_decided`` (was
``handled``), ``changed``, ``held`` (was ``queued``: a catch-up schedule's tick
waits for the previous run); they no longer return a reason in the outcome's
place (``paused`` for a skipped tick). The first, eight-argument
``agnt_defer_schedule_tick`` (0007), which nothing has called since 0013, is dropped.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from alembic import context, op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LOCK = "PERFORM pg_advisory_xact_lock(hashtextextended('agnt_schedule:' || _schedule_id, 0));"

_DEFER_ARGS = (
    "text, text, text, text, text, text, text, integer, bigint, boolean, bigint"
)
_FIRST_DEFER_ARGS = "text, text, text, text, integer, bigint, boolean, bigint"

DEFER = f"""
CREATE FUNCTION agnt_defer_schedule_tick(
    _schedule_id text, _task_name text, _cron text, _zone text, _queue text,
    _lock text, _queueing_lock text, _priority integer, _tick bigint,
    _retry_when_queued boolean, _worker_id bigint
) RETURNS TABLE (outcome text, reason text, job_id bigint)
LANGUAGE plpgsql AS $$
-- Decide one tick that a worker planned with the schedule's job, cron and zone.
-- Decided (and recorded in schedule_ticks): 'deferred' with the run's id, or
-- 'skipped' with its reason. Not decided (nothing recorded): 'changed' when the
-- planned values are no longer the row's, so a decision never follows values an
-- operator replaced before it was taken; 'already_decided' when this tick or a
-- later one was; 'held' (reason 'queued') when the previous run still waits and
-- the schedule catches up, so the tick is tried again.
DECLARE
    _tick_at timestamptz := to_timestamp(_tick);
    _row schedules%ROWTYPE;
    _run_id bigint;
    _constraint text;
BEGIN
    {_LOCK}
    -- FOR SHARE: a change committed before this point is seen; one issued after
    -- it waits until this tick is decided.
    SELECT * INTO _row FROM schedules s WHERE s.id = _schedule_id FOR SHARE;
    IF NOT FOUND OR _row.removed_at IS NOT NULL OR _row.task_name <> _task_name
       OR _row.cron <> _cron OR _row.zone <> _zone OR _row.queue <> _queue THEN
        RETURN QUERY SELECT 'changed'::text, NULL::text, NULL::bigint;
        RETURN;
    END IF;
    IF _tick_at <= agnt_schedule_last_tick(_schedule_id) THEN
        RETURN QUERY SELECT 'already_decided'::text, NULL::text, NULL::bigint;
        RETURN;
    END IF;
    IF NOT _row.enabled THEN
        INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, reason, worker_id)
        VALUES (_schedule_id, _tick_at, 'skipped', 'paused', _worker_id);
        RETURN QUERY SELECT 'skipped'::text, 'paused'::text, NULL::bigint;
        RETURN;
    END IF;
    BEGIN
        _run_id := procrastinate_defer_periodic_job_v2(
            _queue, _lock, _queueing_lock, _task_name, _priority, _schedule_id,
            _tick, jsonb_build_object('timestamp', _tick));
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS _constraint = CONSTRAINT_NAME;
        IF _constraint IS DISTINCT FROM 'procrastinate_jobs_queueing_lock_idx_v1' THEN
            RAISE;
        END IF;
        -- A run of the job is still waiting: at most one waits per job.
        IF _retry_when_queued THEN
            RETURN QUERY SELECT 'held'::text, 'queued'::text, NULL::bigint;
            RETURN;
        END IF;
        INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, reason, worker_id)
        VALUES (_schedule_id, _tick_at, 'skipped', 'queued', _worker_id);
        RETURN QUERY SELECT 'skipped'::text, 'queued'::text, NULL::bigint;
        RETURN;
    END;
    IF _run_id IS NULL THEN
        -- Procrastinate's periodic key: this tick was deferred already.
        RETURN QUERY SELECT 'already_decided'::text, NULL::text, NULL::bigint;
        RETURN;
    END IF;
    INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, job_id, worker_id)
    VALUES (_schedule_id, _tick_at, 'deferred', _run_id, _worker_id);
    RETURN QUERY SELECT 'deferred'::text, NULL::text, _run_id;
END;
$$
"""

SKIP = f"""
CREATE FUNCTION agnt_skip_schedule_tick(
    _schedule_id text, _tick bigint, _reason text, _worker_id bigint
) RETURNS text
LANGUAGE plpgsql AS $$
-- Decide one tick skipped for a reason found before deferring (not_configured):
-- 'skipped', or 'already_decided' (nothing recorded).
DECLARE
    _tick_at timestamptz := to_timestamp(_tick);
BEGIN
    {_LOCK}
    IF _tick_at <= agnt_schedule_last_tick(_schedule_id) THEN
        RETURN 'already_decided';
    END IF;
    INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, reason, worker_id)
    VALUES (_schedule_id, _tick_at, 'skipped', _reason, _worker_id);
    RETURN 'skipped';
END;
$$
"""

RECORD_MISSED = f"""
CREATE OR REPLACE FUNCTION agnt_record_missed_ticks(
    _schedule_id text, _first bigint, _last bigint, _worker_id bigint
) RETURNS boolean
LANGUAGE plpgsql AS $$
-- Record a range of ticks no worker deferred in time, one row for the range:
-- skipped 'missed', or 'paused' if the schedule is paused.
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
            CASE WHEN _enabled THEN {{missed}} ELSE 'paused' END, _worker_id);
    RETURN true;
END;
$$
"""


def _outcome_check(missed: str) -> None:
    op.create_check_constraint(
        op.f("ck_schedule_ticks_outcome"),
        "schedule_ticks",
        "(outcome = 'deferred' AND reason IS NULL AND job_id IS NOT NULL) OR "
        "(outcome = 'skipped' AND reason IN "
        f"('paused', 'queued', '{missed}', 'not_configured'))",
    )


def _rename_missed(old: str, new: str) -> None:
    op.drop_constraint(op.f("ck_schedule_ticks_outcome"), "schedule_ticks", "check")
    op.execute(f"UPDATE schedule_ticks SET reason = '{new}' WHERE reason = '{old}'")
    _outcome_check(new)
    op.execute(RECORD_MISSED.replace("{missed}", f"'{new}'"))


def _revision(name: str) -> ModuleType:
    script = context.script.get_revision(name)
    assert script is not None and script.module is not None
    return script.module


def upgrade() -> None:
    _rename_missed("misfire", "missed")
    op.execute(f"DROP FUNCTION agnt_defer_schedule_tick({_FIRST_DEFER_ARGS})")
    op.execute(f"DROP FUNCTION agnt_defer_schedule_tick({_DEFER_ARGS})")
    op.execute(DEFER)
    op.execute("DROP FUNCTION agnt_skip_schedule_tick(text, bigint, text, bigint)")
    op.execute(SKIP)


def downgrade() -> None:
    op.execute("DROP FUNCTION agnt_skip_schedule_tick(text, bigint, text, bigint)")
    op.execute(SKIP.replace("'already_decided'", "'handled'"))
    op.execute(f"DROP FUNCTION agnt_defer_schedule_tick({_DEFER_ARGS})")
    op.execute(_revision("0013").DEFER)
    _rename_missed("missed", "misfire")
    (first_defer,) = (
        function
        for function in _revision("0007").FUNCTIONS
        if "CREATE FUNCTION agnt_defer_schedule_tick(" in function
    )
    op.execute(first_defer)
