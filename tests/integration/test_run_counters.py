"""The counters of finished runs (``job_run_totals``, ``job_run_duration_buckets``):
two sessions ending runs of the same job at once do not wait on each other, and
the views read the sum of every session's shard."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import psycopg
import pytest

JOB = "busy_job"
SHARDS = 16

START_RUN = """
INSERT INTO job_runs (job_id, attempt, task_name, queue_name, status, started_at)
VALUES (%s, 1, %s, 'default', 'running', now() - interval '2 seconds')
"""
END_RUN = """
UPDATE job_runs SET status = 'succeeded', finished_at = now()
WHERE job_id = %s AND attempt = 1
"""


@pytest.fixture
def sessions(db_url: str) -> Iterator[list[psycopg.Connection]]:
    """Two sessions whose ends count in different shards (backend pids apart
    modulo the shard count), each giving up on a lock after a second."""
    with ExitStack() as stack:
        chosen: list[psycopg.Connection] = []
        while len(chosen) < 2:
            connection = stack.enter_context(psycopg.connect(db_url))
            connection.execute("SET lock_timeout = '1s'")
            shards = {c.info.backend_pid % SHARDS for c in chosen}
            if connection.info.backend_pid % SHARDS not in shards:
                chosen.append(connection)
            connection.commit()
        yield chosen


def test_two_sessions_end_runs_of_one_job_without_waiting_on_each_other(
    db_url: str, sessions: list[psycopg.Connection]
) -> None:
    with psycopg.connect(db_url, autocommit=True) as setup:
        assert setup.execute("SELECT agnt_run_counter_shards()").fetchone() == (SHARDS,)
        for job_id in (1, 2, 3):
            setup.execute(START_RUN, (job_id, JOB))
    first, second = sessions
    first.execute(END_RUN, (1,))  # its counters' rows held until it commits
    second.execute(END_RUN, (2,))  # LockNotAvailable if it waited on them
    second.commit()
    first.commit()
    second.execute(END_RUN, (3,))
    second.commit()

    with psycopg.connect(db_url) as reader:
        totals = reader.execute(
            "SELECT status, runs, duration_seconds >= 6 FROM job_run_totals "
            "WHERE task_name = %s",
            (JOB,),
        ).fetchall()
        buckets = reader.execute(
            "SELECT le, runs FROM job_run_duration_buckets WHERE task_name = %s",
            (JOB,),
        ).fetchall()
        shards = reader.execute(
            "SELECT count(*) FROM job_run_total_shards WHERE task_name = %s", (JOB,)
        ).fetchone()
    assert totals == [("succeeded", 3, True)]
    assert buckets == [(2.5, 3)]
    assert shards == (2,)
