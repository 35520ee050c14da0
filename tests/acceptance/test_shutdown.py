"""A stop is a stop, with real ``procrastinate worker`` processes: past the grace
each running job is stopped (its statement cancelled, an async body cancelled, a
body between far checkpoints ended with its process), recorded ``stopped`` and put
back for another worker, and the process exits 0 within the grace plus 5 s while
its heartbeat goes on; a second signal does it at once and exits 1; a worker killed
with -9 has its job retried within 60 s with the default settings. Every test
ends with the exactly-once check over every attempt of its job: no two attempts
overlap, and the job was done once."""

from __future__ import annotations

import itertools
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support import ticking

pytestmark = pytest.mark.slow
APP = "--app=tests.acceptance.slow_app.app"
GRACE = 3.0
# The promise: exit within the grace plus this.
EXIT_MARGIN = 5.0
# A heartbeat every half second and a stall of 3 s, so that a worker whose
# heartbeat stopped at its shutdown would be rescued (and its job run a second
# time beside it) within the 3 s grace.
FAST_DEATH = {
    "AGNT_WORKER_HEARTBEAT_SECONDS": "0.5",
    "AGNT_STALLED_WORKER_SECONDS": "3",
}


def _env(db_url: str, **extra: str) -> dict[str, str]:
    options = {"AGNT_SHUTDOWN_GRACEFUL_TIMEOUT": str(GRACE), **FAST_DEATH, **extra}
    return ticking.env(db_url, **options)


def _defer(env: dict[str, str], task: str) -> None:
    subprocess.run(
        [ticking.BIN / "procrastinate", APP, "defer", task],
        env=env,
        cwd=ticking.ROOT,
        check=True,
        capture_output=True,
    )


@contextmanager
def _worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as output:
        process = subprocess.Popen(
            [ticking.BIN / "procrastinate", APP, "worker", f"--name={log.stem}"],
            env=env,
            cwd=ticking.ROOT,
            stdout=subprocess.DEVNULL,
            stderr=output,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def _job(engine: Engine, task: str) -> sa.Row:
    [job] = ticking.query(
        engine,
        "SELECT id, status::text AS status, worker_id FROM procrastinate_jobs "
        "WHERE task_name = :t",
        t=task,
    )
    return job


def _runs(engine: Engine, task: str) -> list[sa.Row]:
    return ticking.query(
        engine,
        "SELECT attempt, status, error, started_at, finished_at, worker_id "
        "FROM job_runs WHERE task_name = :t ORDER BY attempt",
        t=task,
    )


def _blocked(engine: Engine) -> bool:
    return bool(
        ticking.query(
            engine,
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'",
        )
    )


def _heartbeat(engine: Engine, worker_id: int) -> float | None:
    rows = ticking.query(
        engine,
        "SELECT extract(epoch FROM last_heartbeat) AS at "
        "FROM procrastinate_workers WHERE id = :id",
        id=worker_id,
    )
    return float(rows[0].at) if rows else None


def _stop_and_time(
    worker: subprocess.Popen, engine: Engine, worker_id: int, *signals: int
) -> tuple[float, int, list[float]]:
    """Send ``signals`` (a second after one another); how long after the last
    one the process exited, its status, and the heartbeats it recorded after
    the first."""
    beats: list[float] = []
    first_at = ticking.db_now(engine).timestamp()
    sent = time.monotonic()
    for number, signum in enumerate(signals):
        if number:
            time.sleep(1)
        worker.send_signal(signum)
        sent = time.monotonic()
    while worker.poll() is None:
        beat = _heartbeat(engine, worker_id)
        if beat is not None and beat > first_at:
            beats.append(beat)
        time.sleep(0.1)
        assert time.monotonic() - sent < 120
    return time.monotonic() - sent, worker.returncode, sorted(set(beats))


def assert_done_once(engine: Engine, task: str) -> list[sa.Row]:
    """Every attempt of ``task``'s job ended; no two overlapped; one succeeded,
    the last; the job succeeded."""
    runs = _runs(engine, task)
    assert all(run.finished_at is not None for run in runs), runs
    for before, after in itertools.pairwise(runs):
        assert before.finished_at <= after.started_at, (before, after)
    assert [run.status for run in runs].count("succeeded") == 1
    assert runs[-1].status == "succeeded"
    assert _job(engine, task).status == "succeeded"
    return runs


@pytest.fixture
def locked(engine: Engine, db_url: str) -> Iterator[psycopg.Connection]:
    """Row 1 of ``test_locked``, held FOR UPDATE by another session until the
    test commits it."""
    with engine.begin() as connection:
        connection.execute(
            sa.text("CREATE TABLE test_locked (id int PRIMARY KEY, n int NOT NULL)")
        )
        connection.execute(sa.text("INSERT INTO test_locked VALUES (1, 0)"))
    with psycopg.connect(db_url) as holder:
        holder.execute("SELECT * FROM test_locked WHERE id = 1 FOR UPDATE")
        yield holder


def _added(engine: Engine) -> int:
    return ticking.query(engine, "SELECT n FROM test_locked")[0].n


def test_past_the_grace_a_job_blocked_on_a_lock_is_cancelled_and_another_worker_runs_it(
    db_url: str, engine: Engine, locked: psycopg.Connection, tmp_path: Path
) -> None:
    env = _env(db_url)
    _defer(env, "test_blocked")
    with _worker(env, tmp_path / "first.log") as first:
        ticking.wait_for(lambda: _blocked(engine))
        worker_id = _job(engine, "test_blocked").worker_id
        # A second worker, whose rescue pass would take the job if the first
        # looked dead while stopping.
        with _worker(env, tmp_path / "second.log"):
            took, status, beats = _stop_and_time(
                first, engine, worker_id, signal.SIGTERM
            )
            assert status == 0
            assert took <= GRACE + EXIT_MARGIN
            assert len(beats) >= 2  # alive until its job had ended
            locked.commit()  # the lock goes: the second worker runs the job
            ticking.wait_for(lambda: _job(engine, "test_blocked").status == "succeeded")
    runs = assert_done_once(engine, "test_blocked")
    assert [run.status for run in runs] == ["stopped", "succeeded"]
    # Stopped through its cancelled statement, not by its process ending.
    assert "worker shutting down" in runs[0].error
    assert _added(engine) == 1


def test_past_the_grace_a_job_between_far_checkpoints_ends_with_its_process(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A body in a long Python step (nothing to cancel) is put back by its
    worker, which exits 0 in the bound; the next attempt starts after the first
    process is gone."""
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE test_far_done (job int)"))
    env = _env(db_url, AGNT_TEST_FAR_SECONDS="120")
    _defer(env, "test_far")
    with _worker(env, tmp_path / "first.log") as first:
        ticking.wait_for(lambda: _runs(engine, "test_far") != [])
        worker_id = _job(engine, "test_far").worker_id
        took, status, beats = _stop_and_time(first, engine, worker_id, signal.SIGTERM)
        gone_at = ticking.db_now(engine)
    assert status == 0
    assert took <= GRACE + EXIT_MARGIN
    assert len(beats) >= 2
    assert "did not stop" in (tmp_path / "first.log").read_text()
    with _worker({**env, "AGNT_TEST_FAR_SECONDS": "0.1"}, tmp_path / "second.log"):
        ticking.wait_for(lambda: _job(engine, "test_far").status == "succeeded")
    runs = assert_done_once(engine, "test_far")
    assert [run.status for run in runs] == ["stopped", "succeeded"]
    assert runs[1].started_at > gone_at
    assert ticking.query(engine, "SELECT count(*) AS n FROM test_far_done")[0].n == 1


def test_past_the_grace_an_async_body_is_cancelled_and_put_back_at_once(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    env = _env(db_url, AGNT_TEST_ASYNC_SECONDS="120")
    _defer(env, "test_async_sleep")
    with _worker(env, tmp_path / "first.log") as first:
        ticking.wait_for(lambda: _job(engine, "test_async_sleep").status == "doing")
        worker_id = _job(engine, "test_async_sleep").worker_id
        took, status, beats = _stop_and_time(first, engine, worker_id, signal.SIGTERM)
    assert status == 0
    assert took <= GRACE + EXIT_MARGIN
    assert len(beats) >= 2
    assert _job(engine, "test_async_sleep").status == "todo"
    [stopped] = _runs(engine, "test_async_sleep")
    assert stopped.status == "stopped"
    due = ticking.query(
        engine,
        "SELECT scheduled_at < :at + interval '1 second' AS due "
        "FROM procrastinate_jobs "
        "WHERE task_name = 'test_async_sleep'",
        at=stopped.finished_at,
    )
    assert due[0].due  # back in the queue at once, not after a retry delay
    with _worker({**env, "AGNT_TEST_ASYNC_SECONDS": "0.1"}, tmp_path / "second.log"):
        ticking.wait_for(lambda: _job(engine, "test_async_sleep").status == "succeeded")
    assert_done_once(engine, "test_async_sleep")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_stops_the_jobs_puts_them_back_and_exits_1_at_once(
    signum: int,
    db_url: str,
    engine: Engine,
    locked: psycopg.Connection,
    tmp_path: Path,
) -> None:
    env = _env(db_url, AGNT_SHUTDOWN_GRACEFUL_TIMEOUT="600")
    _defer(env, "test_blocked")
    log = tmp_path / "first.log"
    with _worker(env, log) as first:
        ticking.wait_for(lambda: _blocked(engine))
        worker_id = _job(engine, "test_blocked").worker_id
        took, status, _ = _stop_and_time(first, engine, worker_id, signum, signum)
    assert status == 1
    assert took <= 2
    name = signal.Signals(signum).name
    lines = [line for line in log.read_text().splitlines() if f"second {name}" in line]
    assert len(lines) == 1
    assert _job(engine, "test_blocked").status == "todo"
    assert [run.status for run in _runs(engine, "test_blocked")] == ["stopped"]
    locked.commit()
    with _worker(env, tmp_path / "second.log"):
        ticking.wait_for(lambda: _job(engine, "test_blocked").status == "succeeded")
    assert_done_once(engine, "test_blocked")
    assert _added(engine) == 1


def test_with_the_defaults_a_job_of_a_worker_killed_with_9_is_retried_within_60_s(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE test_far_done (job int)"))
    env = ticking.env(db_url, AGNT_TEST_FAR_SECONDS="600")
    _defer(env, "test_far")
    with _worker(env, tmp_path / "killed.log") as killed:
        ticking.wait_for(lambda: _runs(engine, "test_far") != [])
        with _worker({**env, "AGNT_TEST_FAR_SECONDS": "0.1"}, tmp_path / "other.log"):
            killed.kill()
            killed.wait()
            killed_at = ticking.db_now(engine)
            ticking.wait_for(lambda: len(_runs(engine, "test_far")) == 2, 90)
            ticking.wait_for(lambda: _job(engine, "test_far").status == "succeeded")
    runs = assert_done_once(engine, "test_far")
    assert runs[0].status == "failed" and "WorkerLost" in runs[0].error
    retried_after = (runs[1].started_at - killed_at).total_seconds()
    assert 0 < retried_after <= 60
