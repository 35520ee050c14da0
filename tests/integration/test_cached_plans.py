"""Through PgBouncer in transaction pooling nothing the worker sends is prepared
(``prepare_threshold`` off), so a statement the worker sends is planned by the
server at every call. The statements of each job's claim and end that take
planning (the end's, and the claim's run timeout) live in PL/pgSQL functions,
whose plans a server session keeps across transactions: measured here with
``pg_stat_statements`` on a private cluster, the worker's own statements sent as
it sends them in pooled mode."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest

from agnt_jobs.db import migrate
from agnt_jobs.scheduler.stopping import SQL
from agnt_jobs.scheduler.worker import CLAIM_JOBS
from agnt_jobs.testing.cluster import PgCluster
from tests.support import clusters

RUNS = 20
# A PL/pgSQL statement's first five runs get a plan each for their values, then
# one generic plan is kept: far fewer plans than runs.
MOST_PLANS = 6


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    with clusters.started_with(
        shared_preload_libraries="pg_stat_statements",
        **{
            "pg_stat_statements.track": "all",
            "pg_stat_statements.track_planning": "on",
        },
    ) as cluster:
        yield cluster


def test_a_jobs_claim_and_end_are_not_planned_at_every_call(
    cluster: PgCluster,
) -> None:
    url = cluster.create_database("agnt")
    migrate.upgrade(url, "head")
    # As the queue pool connects behind PgBouncer: autocommit, nothing prepared.
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as connection:
        connection.execute("CREATE EXTENSION pg_stat_statements")
        row = connection.execute("SELECT procrastinate_register_worker_v1()").fetchone()
        assert row is not None
        worker_id = row[0]
        connection.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args) "
            "SELECT 'q', 't', '{}'::jsonb FROM generate_series(1, %s)",
            (RUNS,),
        )
        connection.execute("SELECT pg_stat_statements_reset()")
        for claim in range(1, RUNS + 1):
            claimed = connection.execute(
                CLAIM_JOBS,
                {
                    "queues": None,
                    "worker_id": worker_id,
                    "n": 1,
                    "claim": claim,
                    "worker_name": "w",
                },
            ).fetchall()
            assert len(claimed) == 1
            ends = [
                {
                    "job_id": claimed[0][0],
                    "status": "succeeded",
                    "delete_job": False,
                    "attempt": 1,
                    "run_status": "succeeded",
                    "result": None,
                    "error": None,
                }
            ]
            ended = connection.execute(
                SQL["finish_own_jobs"],
                {"ends": json.dumps(ends), "worker_id": worker_id},
            ).fetchall()
            assert [job_id for job_id, *_ in ended] == [claimed[0][0]]
        planned = connection.execute(
            "SELECT query, calls, plans FROM pg_stat_statements "
            "WHERE query LIKE '%%jsonb_to_recordset%%' "
            "   OR query LIKE '%%JOIN schedule_rows s ON s.id = t.schedule_id%%'"
        ).fetchall()
    # Each of the two (the end's statement, the run timeout's) is run RUNS times.
    assert {calls for _, calls, _ in planned} == {RUNS}
    assert len(planned) == 2
    assert [plans for _, _, plans in planned if plans > MOST_PLANS] == []
