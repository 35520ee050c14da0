"""A worker killed while it holds a claimed batch: every job of the batch is retried
exactly once by the rescue, on a real ``procrastinate worker`` process SIGKILLed."""

from __future__ import annotations

import signal

import pytest
from sqlalchemy.engine import Engine

from tests.support import ticking

pytestmark = pytest.mark.slow

JOBS = 5
FAST = {"AGNT_WORKER_HEARTBEAT_SECONDS": "0.5", "AGNT_STALLED_WORKER_SECONDS": "2"}


def _runs(engine: Engine) -> dict[int, list[tuple[int, str]]]:
    rows = ticking.query(
        engine,
        "SELECT job_id, attempt, status FROM job_runs WHERE task_name = 'test_long' "
        "ORDER BY job_id, attempt",
    )
    runs: dict[int, list[tuple[int, str]]] = {}
    for row in rows:
        runs.setdefault(row.job_id, []).append((row.attempt, row.status))
    return runs


def test_a_killed_workers_claimed_batch_is_retried_exactly_once(
    db_url: str, engine: Engine
) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args) "
            f"SELECT 'default', 'test_long', '{{}}' FROM generate_series(1, {JOBS})"
        )

    def claimed() -> bool:
        rows = ticking.query(
            engine,
            "SELECT count(*) AS n FROM job_runs "
            "WHERE task_name = 'test_long' AND status = 'running'",
        )
        return rows[0].n == JOBS

    doomed_env = ticking.env(
        db_url, AGNT_TEST_LONG_SECONDS="60", AGNT_WORKER_CONCURRENCY="8", **FAST
    )
    with ticking.workers(doomed_env) as [doomed]:
        ticking.wait_for(claimed)
        # One claim took the batch: its start records share its transaction's time.
        [row] = ticking.query(
            engine,
            "SELECT count(DISTINCT started_at) AS claims, count(DISTINCT worker_id) "
            "AS workers FROM job_runs WHERE task_name = 'test_long'",
        )
        assert (row.claims, row.workers) == (1, 1)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    doing = ticking.query(
        engine,
        "SELECT count(*) AS n FROM procrastinate_jobs "
        "WHERE task_name = 'test_long' AND status = 'doing'",
    )
    assert doing[0].n == JOBS  # nothing but the rescue will ever end them

    rescuer_env = ticking.env(
        db_url, AGNT_TEST_LONG_SECONDS="0.1", AGNT_TEST_FAST_RESCUE="1", **FAST
    )
    with ticking.workers(rescuer_env):
        ticking.wait_for(
            lambda: all(runs[-1] == (2, "succeeded") for runs in _runs(engine).values())
        )
    runs = _runs(engine)
    assert len(runs) == JOBS
    assert all(r == [(1, "failed"), (2, "succeeded")] for r in runs.values()), runs
    [jobs] = ticking.query(
        engine,
        "SELECT count(*) FILTER (WHERE status = 'succeeded' AND attempts = 2) AS ok, "
        "count(*) AS n FROM procrastinate_jobs WHERE task_name = 'test_long'",
    )
    assert (jobs.ok, jobs.n) == (JOBS, JOBS)
