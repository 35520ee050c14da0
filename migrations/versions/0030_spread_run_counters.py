"""The counters of finished runs are spread over shards, one per server session.

Every run's end added to its job's row of ``job_run_totals`` and of
``job_run_duration_buckets`` (the ``job_runs`` trigger ``agnt_job_runs_count``),
and held those rows' locks until its transaction committed: two workers ending
runs of the same job took turns. With thirty workers draining one job, the wait on
that row was most of an end's time on the server (0.7 to 1.3 ms of 3 ms, against
0.1 ms with three workers). Each server session now adds to a shard of its own
(its backend pid modulo ``agnt_run_counter_shards()``), so ends in different
sessions do not wait on each other, and ``job_run_totals`` and
``job_run_duration_buckets`` become views that sum the shards: every reader, and
the SQL in docs/metrics.md, reads them as before.

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

SHARDS = """
CREATE FUNCTION agnt_run_counter_shards() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 16 $$
"""

COUNT_RUN = """
CREATE OR REPLACE FUNCTION agnt_count_finished_run() RETURNS trigger
LANGUAGE plpgsql AS $$
-- A run that ended (running -> any other status) adds one to its job's counters,
-- in this server session's shard: ends in other sessions never wait on its rows.
DECLARE
    _seconds double precision := GREATEST(
        extract(epoch FROM NEW.finished_at - NEW.started_at), 0);
    _shard smallint := pg_backend_pid() % agnt_run_counter_shards();
BEGIN
    INSERT INTO job_run_total_shards AS t
        (task_name, status, shard, runs, duration_seconds, last_finished_at)
    VALUES (NEW.task_name, NEW.status, _shard, 1, _seconds, NEW.finished_at)
    ON CONFLICT (task_name, status, shard) DO UPDATE
    SET runs = t.runs + 1,
        duration_seconds = t.duration_seconds + EXCLUDED.duration_seconds,
        last_finished_at = GREATEST(t.last_finished_at, EXCLUDED.last_finished_at);
    INSERT INTO job_run_duration_bucket_shards AS b (task_name, le, shard, runs)
    SELECT NEW.task_name, min(bound), _shard, 1
    FROM unnest(agnt_run_duration_bounds()) AS bound WHERE _seconds <= bound
    ON CONFLICT (task_name, le, shard) DO UPDATE SET runs = b.runs + 1;
    RETURN NULL;
END;
$$
"""

VIEWS = """
CREATE VIEW job_run_totals AS
-- Finished runs per job and status, ever: the shards summed.
SELECT task_name, status, sum(runs)::bigint AS runs,
       sum(duration_seconds) AS duration_seconds,
       max(last_finished_at) AS last_finished_at
FROM job_run_total_shards GROUP BY task_name, status;

CREATE VIEW job_run_duration_buckets AS
-- Finished runs per job and duration bucket: the shards summed.
SELECT task_name, le, sum(runs)::bigint AS runs
FROM job_run_duration_bucket_shards GROUP BY task_name, le;
"""

COUNT_RUN_UNSHARDED = """
CREATE OR REPLACE FUNCTION agnt_count_finished_run() RETURNS trigger
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


def upgrade() -> None:
    op.execute(SHARDS)
    op.execute("ALTER TABLE job_run_totals RENAME TO job_run_total_shards")
    op.execute(
        "ALTER TABLE job_run_total_shards "
        "RENAME CONSTRAINT pk_job_run_totals TO pk_job_run_total_shards"
    )
    op.execute(
        "ALTER TABLE job_run_duration_buckets RENAME TO job_run_duration_bucket_shards"
    )
    op.execute(
        "ALTER TABLE job_run_duration_bucket_shards RENAME CONSTRAINT "
        "pk_job_run_duration_buckets TO pk_job_run_duration_bucket_shards"
    )
    for table, key in (
        ("job_run_total_shards", "task_name, status"),
        ("job_run_duration_bucket_shards", "task_name, le"),
    ):
        # The counts so far are shard 0's.
        op.execute(f"ALTER TABLE {table} ADD COLUMN shard smallint NOT NULL DEFAULT 0")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN shard DROP DEFAULT")
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}, "
            f"ADD CONSTRAINT pk_{table} PRIMARY KEY ({key}, shard)"
        )
    op.execute(COUNT_RUN)
    op.execute(VIEWS)


def downgrade() -> None:
    op.execute("DROP VIEW job_run_totals")
    op.execute("DROP VIEW job_run_duration_buckets")
    # Every shard folded into one row per key, as before the spread.
    op.execute(
        """
        WITH taken AS (DELETE FROM job_run_total_shards RETURNING *)
        INSERT INTO job_run_total_shards
            (task_name, status, shard, runs, duration_seconds, last_finished_at)
        SELECT task_name, status, 0, sum(runs), sum(duration_seconds),
               max(last_finished_at)
        FROM taken GROUP BY task_name, status
        """
    )
    op.execute(
        """
        WITH taken AS (DELETE FROM job_run_duration_bucket_shards RETURNING *)
        INSERT INTO job_run_duration_bucket_shards (task_name, le, shard, runs)
        SELECT task_name, le, 0, sum(runs) FROM taken GROUP BY task_name, le
        """
    )
    for table, key, old in (
        ("job_run_total_shards", "task_name, status", "job_run_totals"),
        (
            "job_run_duration_bucket_shards",
            "task_name, le",
            "job_run_duration_buckets",
        ),
    ):
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}, "
            f"ADD CONSTRAINT pk_{old} PRIMARY KEY ({key})"
        )
        op.execute(f"ALTER TABLE {table} DROP COLUMN shard")
        op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    op.execute(COUNT_RUN_UNSHARDED)
    op.execute("DROP FUNCTION agnt_run_counter_shards()")
