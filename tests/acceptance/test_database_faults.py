"""Workers outlive their database: three real ``procrastinate worker`` processes on a
private PostgreSQL cluster that the test restarts and stops. Every process stays
alive, every tick is decided once and as its misfire policy says, and no job is left
``doing`` or run twice."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs.db import create_engine, migrate
from agnt_jobs.testing.cluster import PgCluster
from tests.support import clusters, ticking
from tests.support.silent_proxy import SilentProxy

pytestmark = pytest.mark.slow
PERIOD = timedelta(seconds=2)  # test_catch_up and test_skip tick every 2 s


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    with clusters.started() as cluster:
        yield cluster


def _alive(processes: list) -> bool:
    return all(process.poll() is None for process in processes)


def _statuses(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT status::text, count(*) FROM procrastinate_jobs "
                "WHERE task_name LIKE 'test_%' GROUP BY 1"
            )
        )
        return {status: count for status, count in rows}


def _fault_env(url: str, schedules: str, **extra: str) -> dict[str, str]:
    """Workers on ``url`` ticking ``schedules``, with a short misfire tolerance and
    retries at most a second apart, so a test's outage is seconds long."""
    return ticking.env(
        url,
        AGNT_TEST_SCHEDULES=schedules,
        AGNT_SCHEDULE_MISFIRE_TOLERANCE_SECONDS="0.5",
        AGNT_DB_RETRY_MAX_SECONDS="1",
        **extra,
    )


def _catch_up_ticks_each_deferred_once(engine: Engine) -> list[sa.Row]:
    """test_catch_up's ticks: every one deferred, once, each with its job."""
    ticks = ticking.ticks(engine, "test_catch_up")
    ticking.assert_every_tick_decided_once(ticks, PERIOD)
    assert {tick.outcome for tick in ticks} == {"deferred"}
    assert ticking.job_ticks(engine, "test_catch_up") == [
        int(tick.tick_at.timestamp()) for tick in ticks
    ]
    return ticks


def test_three_workers_outlive_a_restart_and_an_outage(cluster: PgCluster) -> None:
    url = cluster.create_database("agnt")
    migrate.upgrade(url, "head")
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    env = _fault_env(url, "test_catch_up,test_skip")
    with ticking.workers(env, count=3) as workers:
        ticking.wait_for(lambda: len(ticking.job_ticks(engine, "test_skip")) >= 2)

        cluster.restart()
        time.sleep(3)
        assert _alive(workers)

        last_skip = ticking.ticks(engine, "test_skip")[-1].tick_at
        cluster.stop()
        down_from = datetime.now(UTC)
        time.sleep(5)  # at least two ticks of each schedule pass unseen
        assert _alive(workers)
        cluster.start()
        back_at = datetime.now(UTC)
        ticking.wait_for(
            lambda: all(
                ticking.ticks(engine, schedule)[-1].tick_at > back_at + PERIOD
                for schedule in ("test_catch_up", "test_skip")
            )
        )
        assert _alive(workers)
    assert [worker.returncode for worker in workers] == [0, 0, 0]

    # catch_up: every tick, the outage's included, deferred exactly once.
    ticks = _catch_up_ticks_each_deferred_once(engine)
    during = [t for t in ticks if down_from + PERIOD < t.tick_at < back_at - PERIOD]
    assert len(during) >= 1
    assert all(t.decided_at >= back_at - timedelta(seconds=1) for t in during)

    # skip: every tick decided once; the outage's recorded missed, none run.
    after = [t for t in ticking.ticks(engine, "test_skip") if t.tick_at > last_skip]
    decided = ticking.decided(after, PERIOD)
    assert decided == [last_skip + (i + 1) * PERIOD for i in range(len(decided))]
    deferred = {int(t.tick_at.timestamp()) for t in after if t.outcome == "deferred"}
    missed = [t for t in decided if down_from + PERIOD < t < back_at - PERIOD]
    assert missed and not {int(t.timestamp()) for t in missed} & deferred

    # Nothing left running, nothing failed: a run cut off was retried.
    statuses = _statuses(engine)
    assert set(statuses) <= {"succeeded", "todo"}, statuses


def test_two_workers_follow_a_failover_to_the_promoted_standby(
    cluster: PgCluster,
) -> None:
    """A primary and its streaming standby (``pg_basebackup -R``); the workers know
    both through a libpq multi-host URL that asks for a read-write server. The
    primary stops, the standby is promoted: the workers carry on against it by
    themselves (while it is still read-only, a connection to it counts as lost),
    and no tick is decided twice or lost across the switch."""
    migrate.upgrade(cluster.create_database("agnt"), "head")
    standby = cluster.standby()
    try:
        standby.start()
        both = (
            f"postgresql://postgres@127.0.0.1:{cluster.port},127.0.0.1:{standby.port}"
            "/agnt?target_session_attrs=read-write"
        )
        engine = create_engine(both, poolclass=sa.pool.NullPool)
        env = _fault_env(both, "test_catch_up")
        with ticking.workers(env, count=2) as workers:
            ticking.wait_for(
                lambda: len(ticking.job_ticks(engine, "test_catch_up")) >= 2
            )
            cluster.stop()
            time.sleep(2 * PERIOD.total_seconds())  # the primary gone, no promotion
            assert _alive(workers)
            standby.promote()
            promoted_at = datetime.now(UTC)
            ticking.wait_for(
                lambda: (
                    ticking.ticks(engine, "test_catch_up")[-1].tick_at
                    > promoted_at + 2 * PERIOD
                )
            )
            assert _alive(workers)
        assert [worker.returncode for worker in workers] == [0, 0]

        _catch_up_ticks_each_deferred_once(engine)
        statuses = _statuses(engine)
        assert set(statuses) <= {"succeeded", "todo"}, statuses
    finally:
        standby.cleanup()


SILENT_AFTER = 6  # AGNT_DB_SILENT_AFTER_SECONDS in the silent-database test


def _logged(logs: Path, text: str) -> bool:
    return all(text in log.read_text() for log in logs.glob("w*.log"))


def test_two_workers_notice_a_silent_database_and_recover_when_it_answers(
    cluster: PgCluster, tmp_path: Path
) -> None:
    """The workers reach the database through a proxy that goes silent: connections
    stay open, nothing answers. Each worker says the database is lost within the
    configured bound, stays alive, and carries on once answers flow again; the
    queries the proxy held are delivered late, and still no tick is decided twice."""
    url = cluster.create_database("agnt")
    migrate.upgrade(url, "head")
    proxy = SilentProxy.before(url)
    try:
        engine = create_engine(url, poolclass=sa.pool.NullPool)
        env = _fault_env(
            proxy.url(url),
            "test_catch_up",
            AGNT_DB_SILENT_AFTER_SECONDS=str(SILENT_AFTER),
            AGNT_DB_CONNECT_TIMEOUT_SECONDS="2",
        )
        with ticking.workers(env, count=2, logs=tmp_path) as workers:
            ticking.wait_for(
                lambda: len(ticking.job_ticks(engine, "test_catch_up")) >= 2
            )
            proxy.pause()
            paused_at = time.monotonic()
            ticking.wait_for(
                lambda: _logged(tmp_path, "database connection lost"), timeout=30
            )
            assert time.monotonic() - paused_at <= SILENT_AFTER + 2
            time.sleep(2 * PERIOD.total_seconds())
            assert _alive(workers)
            proxy.resume()
            resumed_at = datetime.now(UTC)
            ticking.wait_for(
                lambda: (
                    ticking.ticks(engine, "test_catch_up")[-1].tick_at
                    > resumed_at + 2 * PERIOD
                )
            )
            ticking.wait_for(lambda: _logged(tmp_path, "database connection back"))
            assert _alive(workers)
        assert [worker.returncode for worker in workers] == [0, 0]
    finally:
        proxy.stop()

    _catch_up_ticks_each_deferred_once(engine)


def test_a_chunked_job_cut_off_by_a_restart_is_retried_and_does_each_step_once(
    cluster: PgCluster,
) -> None:
    """A worker runs a job of 40 one-transaction steps; the database restarts in the
    middle. The attempt fails as "database connection lost", the job is retried
    once the database is back, and the retry does only the steps not yet committed:
    the table holds each step once (its primary key refuses a second), as after a
    clean run."""
    url = cluster.create_database("agnt")
    migrate.upgrade(url, "head")
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(
            sa.text("CREATE TABLE test_steps (step int PRIMARY KEY, job_id bigint)")
        )
    env = ticking.env(
        url,
        AGNT_TEST_STEPS="40",
        AGNT_TEST_STEP_SECONDS="0.1",
        AGNT_DB_RETRY_MAX_SECONDS="1",
    )
    app = "--app=tests.acceptance.slow_app.app"
    subprocess.run(
        [ticking.BIN / "procrastinate", app, "defer", "test_steps"],
        env=env,
        cwd=ticking.ROOT,
        check=True,
        capture_output=True,
    )

    def steps() -> list[int]:
        return [
            row.step for row in ticking.query(engine, "SELECT step FROM test_steps")
        ]

    worker = subprocess.Popen(
        [ticking.BIN / "procrastinate", app, "worker"],
        env=env,
        cwd=ticking.ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ticking.wait_for(lambda: len(steps()) >= 5)
        cluster.restart()
        ticking.wait_for(
            lambda: (
                ticking.query(
                    engine,
                    "SELECT 1 FROM procrastinate_jobs "
                    "WHERE task_name = 'test_steps' AND status = 'succeeded'",
                )
                != []
            )
        )
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert worker.returncode == 0

    assert sorted(steps()) == list(range(1, 41))
    runs = ticking.query(
        engine,
        "SELECT status, error, result FROM job_runs "
        "WHERE task_name = 'test_steps' ORDER BY attempt",
    )
    assert [run.status for run in runs] == ["failed", "succeeded"]
    assert "database connection lost" in runs[0].error
    done_first = 40 - runs[1].result["steps"]
    assert 5 <= done_first < 40
