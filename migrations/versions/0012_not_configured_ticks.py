"""A tick of a job whose outside system has no settings is decided skipped with the
reason ``not_configured``: the constraint admits the reason, and
``agnt_skip_schedule_tick`` records such a decision under the same per-schedule lock
and "already decided" guard as every other decision.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REASONS = "'paused', 'queued', 'misfire'"


def _outcome_check(reasons: str) -> None:
    op.drop_constraint(op.f("ck_schedule_ticks_outcome"), "schedule_ticks", "check")
    op.create_check_constraint(
        op.f("ck_schedule_ticks_outcome"),
        "schedule_ticks",
        "(outcome = 'deferred' AND reason IS NULL AND job_id IS NOT NULL) OR "
        f"(outcome = 'skipped' AND reason IN ({reasons}))",
    )


def upgrade() -> None:
    _outcome_check(f"{_REASONS}, 'not_configured'")
    op.execute(
        """
CREATE FUNCTION agnt_skip_schedule_tick(
    _schedule_id text, _tick bigint, _reason text, _worker_id bigint
) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    _tick_at timestamptz := to_timestamp(_tick);
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('agnt_schedule:' || _schedule_id, 0));
    IF _tick_at <= agnt_schedule_last_tick(_schedule_id) THEN
        RETURN 'handled';
    END IF;
    INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, reason, worker_id)
    VALUES (_schedule_id, _tick_at, 'skipped', _reason, _worker_id);
    RETURN 'skipped';
END;
$$
"""
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION agnt_skip_schedule_tick(text, bigint, text, bigint)")
    op.execute("DELETE FROM schedule_ticks WHERE reason = 'not_configured'")
    _outcome_check(_REASONS)
