"""A fleet on one Postgres: 30 real ``procrastinate worker`` processes (concurrency
2 each) on a private cluster with ``max_connections`` 100, straight and through
PgBouncer in transaction pooling. Every tick of every schedule is decided once, no
worker exits, a restart of the cluster in the middle is ridden out; straight, the
workers the server has no room for wait and say why (never "check
AGNT_DATABASE_URL"); through PgBouncer, the server's connections stay within
its limit and nobody is refused.

The machine has 2 cores shared with others: the run is bounded (about a minute of
ticks per mode; ``agnt-jobs bench --only fleet --fleet-seconds 600`` is the ten
minutes, and measures) and the assertions are about decisions and exits, never
speed. Thirty workers start, and stop, slowly there: the waits allow for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from agnt_jobs.bench.fleet import Sampler
from agnt_jobs.db import create_engine, migrate
from agnt_jobs.testing.cluster import ClusterUnavailable, PgCluster
from agnt_jobs.testing.pgbouncer import PgBouncer, PgBouncerUnavailable
from tests.support import ticking

pytestmark = pytest.mark.slow

WORKERS = 30
MAX_CONNECTIONS = 100
SCHEDULES = ("test_tick", "test_catch_up")  # every second, every 2 s: catch_up
PERIODS = {"test_tick": timedelta(seconds=1), "test_catch_up": timedelta(seconds=2)}


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    try:
        cluster = PgCluster.temporary()
    except ClusterUnavailable as reason:
        pytest.skip(str(reason))
    cluster.settings["max_connections"] = str(MAX_CONNECTIONS)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


def _ran_each_tick_once(engine: sa.Engine, schedule: str, since: datetime) -> int:
    ticks = [t for t in ticking.ticks(engine, schedule) if t.tick_at > since]
    ticking.assert_every_tick_decided_once(ticks, PERIODS[schedule])
    assert {t.outcome for t in ticks} == {"deferred"}, schedule
    assert ticking.job_ticks(engine, schedule)[-len(ticks) :] == [
        int(t.tick_at.timestamp()) for t in ticks
    ]
    return len(ticks)


@pytest.mark.parametrize("through", ["straight", "pgbouncer"])
def test_thirty_workers_on_one_server_decide_every_tick_once(
    cluster: PgCluster, through: str, tmp_path: Path
) -> None:
    admin = cluster.create_database("agnt")
    migrate.upgrade(admin, "head")
    # The workers connect as a role that is not a superuser, so the slots the
    # server reserves for superusers stay free for this test's own queries.
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute("CREATE ROLE agnt LOGIN IN ROLE postgres")
    direct = admin.replace("postgresql://postgres@", "postgresql://agnt@")
    engine = create_engine(admin, poolclass=sa.pool.NullPool)
    extra: dict[str, str] = {}
    bouncer = None
    if through == "pgbouncer":
        try:
            bouncer = PgBouncer(direct, pool_size=20)
            bouncer.start()
        except PgBouncerUnavailable as reason:
            pytest.skip(str(reason))
        extra["AGNT_DATABASE_DIRECT_URL"] = direct
    url = bouncer.url("agnt") if bouncer else direct
    env = ticking.env(
        url,
        AGNT_TEST_SCHEDULES=",".join(SCHEDULES),
        AGNT_WORKER_CONCURRENCY="2",
        AGNT_DB_RETRY_MAX_SECONDS="1",
        AGNT_SCHEDULE_MISFIRE_TOLERANCE_SECONDS="0.5",
        AGNT_SHUTDOWN_GRACEFUL_TIMEOUT="10",
        # Thirty first connections at once on two busy cores can take more than
        # the default 3 s, which a starting worker reads as a wrong URL.
        AGNT_DB_CONNECT_TIMEOUT_SECONDS="15",
        **extra,
    )
    try:
        with (
            Sampler(cluster.url(), None) as peak,
            ticking.workers(
                env, count=WORKERS, logs=tmp_path, stop_timeout=90
            ) as workers,
        ):
            # The whole fleet up: each worker registered, or (straight, the
            # server full) waiting for a slot and saying so.
            ticking.wait_for(lambda: _all_up(workers, tmp_path), timeout=300)
            started = ticking.db_now(engine)
            time.sleep(5)
            assert all(w.poll() is None for w in workers), _exits(workers, tmp_path)

            cluster.restart()
            back = datetime.now(UTC)
            # Deciding resumes after the restart: of each schedule, a few ticks
            # decided since (how late they are is the benchmark's business).
            ticking.wait_for(
                lambda: all(
                    sum(t.decided_at > back for t in ticking.ticks(engine, s)) >= 3
                    for s in SCHEDULES
                ),
                timeout=90,
            )
            assert all(w.poll() is None for w in workers), _exits(workers, tmp_path)
        assert [w.returncode for w in workers] == [0] * WORKERS, _exits(
            workers, tmp_path
        )
    finally:
        if bouncer is not None:
            bouncer.stop()

    for schedule in SCHEDULES:
        assert _ran_each_tick_once(engine, schedule, started) >= 5
    statuses = ticking.query(
        engine,
        "SELECT status::text, count(*) FROM procrastinate_jobs "
        "WHERE task_name LIKE 'test_%' GROUP BY 1",
    )
    assert {status for status, _ in statuses} <= {"succeeded", "todo"}, statuses

    logs = "".join((tmp_path / f"w{n}.log").read_text() for n in range(WORKERS))
    assert "check AGNT_DATABASE_URL" not in logs
    assert "Traceback" not in logs
    assert peak.peak <= MAX_CONNECTIONS
    if bouncer is not None:
        # Through PgBouncer the server always had room: nobody was refused.
        assert "refuses more connections" not in logs
    print(f"{through}: peak {peak.peak} server connections for {WORKERS} workers")


def _all_up(workers: list, logs: Path) -> bool:
    assert all(w.poll() is None for w in workers), _exits(workers, logs)
    said = [(logs / f"w{n}.log").read_text() for n in range(len(workers))]
    return all(
        "Starting worker" in log or "refuses more connections" in log for log in said
    )


def _exits(workers: list, logs: Path) -> str:
    ended = [(n, w.returncode) for n, w in enumerate(workers) if w.poll() is not None]
    tails = [(logs / f"w{n}.log").read_text()[-600:] for n, _ in ended[:2]]
    return f"workers ended: {ended}\n" + "\n---\n".join(tails)
