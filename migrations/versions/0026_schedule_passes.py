"""One deferrer pass per tick across a fleet: ``schedule_passes`` holds, for each set
of schedules workers follow (a fingerprint of their rows), the latest tick instant a
worker claimed a pass for, and whether that pass finished.

Workers woken by their timer for a tick claim its pass with
``agnt_claim_schedule_pass``: the first claims it and decides the tick; every other
is told 'done' (the pass finished, or a later one was claimed) or 'running', and
skips its own pass, so 30 workers make one pass per tick, not 30. A claim left
unfinished for longer than the given staleness (its worker died or lost the
database mid-pass) is claimed again by the next worker that asks. The claim only
saves work: each tick is still decided once by ``agnt_defer_schedule_tick`` under
its lock, however many workers pass.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = """
CREATE TABLE schedule_passes (
    fingerprint text PRIMARY KEY,
    due_at timestamptz NOT NULL,
    worker_id bigint,
    claimed_at timestamptz NOT NULL,
    finished_at timestamptz
)
"""

CLAIM = """
CREATE FUNCTION agnt_claim_schedule_pass(
    _fingerprint text, _due_at timestamptz, _worker_id bigint, _stale interval
) RETURNS text
LANGUAGE plpgsql AS $$
-- 'claimed': the caller passes for the tick at _due_at of the schedules it follows
-- (_fingerprint), and marks the pass finished (finished_at) when it ends.
-- 'done': that pass (or a later one) finished or was claimed for a later tick.
-- 'running': another worker claimed it less than _stale ago and has not finished.
DECLARE
    _row schedule_passes%ROWTYPE;
BEGIN
    INSERT INTO schedule_passes AS p (fingerprint, due_at, worker_id, claimed_at)
    VALUES (_fingerprint, _due_at, _worker_id, clock_timestamp())
    ON CONFLICT (fingerprint) DO UPDATE
    SET due_at = EXCLUDED.due_at, worker_id = EXCLUDED.worker_id,
        claimed_at = EXCLUDED.claimed_at, finished_at = NULL
    WHERE p.due_at < EXCLUDED.due_at
       OR (p.due_at = EXCLUDED.due_at AND p.finished_at IS NULL
           AND p.claimed_at < clock_timestamp() - _stale)
    RETURNING * INTO _row;
    IF FOUND THEN
        -- Sets of schedules no worker has followed for a day (an old deploy).
        DELETE FROM schedule_passes
        WHERE fingerprint <> _fingerprint AND claimed_at < now() - interval '1 day';
        RETURN 'claimed';
    END IF;
    SELECT * INTO _row FROM schedule_passes WHERE fingerprint = _fingerprint;
    IF _row.due_at > _due_at OR _row.finished_at IS NOT NULL THEN
        RETURN 'done';
    END IF;
    RETURN 'running';
END;
$$
"""


def upgrade() -> None:
    op.execute(TABLE)
    op.execute(CLAIM)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION agnt_claim_schedule_pass(text, timestamptz, bigint, interval)"
    )
    op.execute("DROP TABLE schedule_passes")
