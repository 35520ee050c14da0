"""Counters of finished runs for ``GET /metrics``: per job and status, how many
runs ended so, the sum of their durations and when the newest ended
(``job_run_totals``), and how many fell in each duration bucket
(``job_run_duration_buckets``). A trigger on ``job_runs`` adds each run as it ends,
so a scrape reads a few rows per job whatever the history's size, and the counters
keep counting when the history's retention deletes old runs (Prometheus counters
must never go down). Unresolved dead letters get an index of their own, for the
same scrape.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The histogram's upper bounds in seconds (the last, +Inf, is 'Infinity'): from a
# housekeeping DELETE of a few milliseconds to the two hours of the heavy jobs.
BOUNDS = """
CREATE FUNCTION agnt_run_duration_bounds() RETURNS double precision[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                 120, 300, 600, 1800, 3600, 7200, 'Infinity']::double precision[]
$$
"""

COUNT_RUN = """
CREATE FUNCTION agnt_count_finished_run() RETURNS trigger
LANGUAGE plpgsql AS $$
-- A run that ended (running -> any other status) adds one to its job's counters.
DECLARE
    _seconds double precision := GREATEST(
        extract(epoch FROM NEW.finished_at - NEW.started_at), 0);
BEGIN
    INSERT INTO job_run_totals AS t
        (task_name, status, runs, duration_seconds, last_finished_at)
    VALUES (NEW.task_name, NEW.status, 1, _seconds, NEW.finished_at)
    ON CONFLICT (task_name, status) DO UPDATE
    SET runs = t.runs + 1,
        duration_seconds = t.duration_seconds + EXCLUDED.duration_seconds,
        last_finished_at = GREATEST(t.last_finished_at, EXCLUDED.last_finished_at);
    INSERT INTO job_run_duration_buckets AS b (task_name, le, runs)
    SELECT NEW.task_name, min(bound), 1
    FROM unnest(agnt_run_duration_bounds()) AS bound WHERE _seconds <= bound
    ON CONFLICT (task_name, le) DO UPDATE SET runs = b.runs + 1;
    RETURN NULL;
END;
$$
"""

TRIGGER = """
CREATE TRIGGER agnt_job_runs_count AFTER UPDATE OF status ON job_runs
FOR EACH ROW
WHEN (OLD.status = 'running' AND NEW.status <> 'running'
      AND NEW.finished_at IS NOT NULL)
EXECUTE FUNCTION agnt_count_finished_run()
"""

# The runs already in the history, counted as the trigger would have.
BACKFILL = """
WITH ended AS (
    SELECT task_name, status, finished_at,
           GREATEST(extract(epoch FROM finished_at - started_at), 0) AS seconds
    FROM job_runs WHERE status <> 'running' AND finished_at IS NOT NULL
), totals AS (
    INSERT INTO job_run_totals
        (task_name, status, runs, duration_seconds, last_finished_at)
    SELECT task_name, status, count(*), sum(seconds), max(finished_at)
    FROM ended GROUP BY task_name, status
)
INSERT INTO job_run_duration_buckets (task_name, le, runs)
SELECT e.task_name, b.le, count(*)
FROM ended e
CROSS JOIN LATERAL (
    SELECT min(bound) AS le FROM unnest(agnt_run_duration_bounds()) AS bound
    WHERE e.seconds <= bound
) b
GROUP BY e.task_name, b.le
"""


def upgrade() -> None:
    op.create_table(
        "job_run_totals",
        sa.Column("task_name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.Column("duration_seconds", sa.Double(), nullable=False),
        sa.Column("last_finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("task_name", "status", name=op.f("pk_job_run_totals")),
    )
    op.create_table(
        "job_run_duration_buckets",
        sa.Column("task_name", sa.Text(), nullable=False),
        sa.Column("le", sa.Double(), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "task_name", "le", name=op.f("pk_job_run_duration_buckets")
        ),
    )
    op.execute(BOUNDS)
    op.execute(COUNT_RUN)
    op.execute(TRIGGER)
    op.execute(BACKFILL)
    op.create_index(
        "ix_dead_letters_unresolved",
        "dead_letters",
        ["source"],
        postgresql_where=sa.text("resolved_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_dead_letters_unresolved", table_name="dead_letters")
    op.execute("DROP TRIGGER agnt_job_runs_count ON job_runs")
    op.execute("DROP FUNCTION agnt_count_finished_run()")
    op.execute("DROP FUNCTION agnt_run_duration_bounds()")
    op.drop_table("job_run_duration_buckets")
    op.drop_table("job_run_totals")
