"""A range of missed ticks is recorded only when it begins after the schedule's last
decided tick. A worker plans its range from the last tick it read at the start of
its pass; if another worker decided a tick after that read (passes after an outage
are made by every worker that wakes), the range would cover that tick a second
time. ``agnt_record_missed_ticks`` now refuses a range whose first tick is not
after the last decided one (it refused only one whose last tick was not), and the
worker plans the schedule again from what is decided.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from alembic import context, op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECORD_MISSED = """
CREATE OR REPLACE FUNCTION agnt_record_missed_ticks(
    _schedule_id text, _first bigint, _last bigint, _worker_id bigint
) RETURNS boolean
LANGUAGE plpgsql AS $$
-- Record a range of ticks no worker deferred in time, one row for the range:
-- skipped 'missed', or 'paused' if the schedule is paused. False, and nothing
-- recorded, when some tick of the range is already decided (the range was planned
-- from a last tick another worker has since passed): plan again from what is.
DECLARE
    _enabled boolean;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('agnt_schedule:' || _schedule_id, 0));
    SELECT s.enabled INTO _enabled FROM schedules s WHERE s.id = _schedule_id;
    IF to_timestamp(_first) <= agnt_schedule_last_tick(_schedule_id) THEN
        RETURN false;
    END IF;
    INSERT INTO schedule_ticks (schedule_id, tick_at, missed_since, outcome, reason,
                                worker_id)
    VALUES (_schedule_id, to_timestamp(_last), to_timestamp(_first), 'skipped',
            CASE WHEN _enabled THEN 'missed' ELSE 'paused' END, _worker_id);
    RETURN true;
END;
$$
"""


def _revision(name: str) -> ModuleType:
    script = context.script.get_revision(name)
    assert script is not None and script.module is not None
    return script.module


def upgrade() -> None:
    op.execute(RECORD_MISSED)


def downgrade() -> None:
    op.execute(_revision("0025").RECORD_MISSED.replace("{missed}", "'missed'"))
