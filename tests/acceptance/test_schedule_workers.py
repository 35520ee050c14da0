"""Real ``procrastinate worker`` processes on one database, over real ticks of the
seconds-level schedules of ``tests/acceptance/ticking_app.py``: each tick deferred
once by three workers, runs of one job never overlapping, pause and resume, catch-up
after a restart, and a SIGKILLed worker's job rescued by the maintenance schedule.

No timing asserts: the tests wait for outcomes and check them in the database.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
APP = "--app=tests.acceptance.ticking_app.app"
SECOND = timedelta(seconds=1)

pytestmark = pytest.mark.slow


def _env(db_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "AGNT_DATABASE_URL": db_url,
        "PYTHONPATH": str(ROOT),
        "AGNT_LOG_FORMAT": "text",
        **extra,
    }


def _wait_for(predicate: Callable[[], bool], timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@contextmanager
def _workers(env: dict[str, str], count: int = 1) -> Iterator[list[subprocess.Popen]]:
    processes = [
        subprocess.Popen(
            [BIN / "procrastinate", APP, "worker", f"--name=w{n}"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(count)
    ]
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)


def _query(engine: Engine, sql: str, **params: object) -> list[sa.Row]:
    with engine.connect() as connection:
        return list(connection.execute(sa.text(sql), params))


def _ticks(engine: Engine, schedule_id: str) -> list[sa.Row]:
    return _query(
        engine,
        "SELECT tick_at, outcome, reason, missed_since, job_id, decided_at "
        "FROM schedule_ticks WHERE schedule_id = :id ORDER BY tick_at",
        id=schedule_id,
    )


def _job_ticks(engine: Engine, task: str) -> list[int]:
    rows = _query(
        engine,
        "SELECT (args->>'timestamp')::bigint FROM procrastinate_jobs "
        "WHERE task_name = :t ORDER BY 1",
        t=task,
    )
    return [row[0] for row in rows]


def _db_now(engine: Engine) -> datetime:
    return _query(engine, "SELECT now()")[0][0]


def _set_enabled(engine: Engine, schedule_id: str, enabled: bool) -> datetime:
    """Flip the switch with plain SQL, as an operator may; the commit time."""
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE schedules SET enabled = :e WHERE id = :id"),
            {"e": enabled, "id": schedule_id},
        )
    return _db_now(engine)


def _assert_every_tick_decided_once(ticks: list[sa.Row], period: timedelta) -> None:
    instants = [tick.tick_at for tick in ticks]
    assert instants == [instants[0] + i * period for i in range(len(instants))]


def test_three_workers_defer_each_tick_once_without_overlap_and_honour_pause(
    db_url: str, engine: Engine
) -> None:
    env = _env(db_url, AGNT_TEST_SCHEDULES="test_tick,test_overlap")
    with _workers(env, count=3):
        _wait_for(lambda: len(_job_ticks(engine, "test_tick")) >= 4)
        paused_at = _set_enabled(engine, "test_tick", False)
        _wait_for(
            lambda: _ticks(engine, "test_tick")[-1].tick_at > paused_at + 2 * SECOND
        )
        resumed_at = _set_enabled(engine, "test_tick", True)
        _wait_for(
            lambda: _ticks(engine, "test_tick")[-1].tick_at > resumed_at + 2 * SECOND
        )
        _wait_for(
            lambda: (
                len(
                    _query(
                        engine,
                        "SELECT 1 FROM job_runs WHERE task_name = 'test_overlap' "
                        "AND finished_at IS NOT NULL",
                    )
                )
                >= 3
            )
        )

    ticks = _ticks(engine, "test_tick")
    _assert_every_tick_decided_once(ticks, SECOND)
    deferred = [t for t in ticks if t.outcome == "deferred"]
    # One job per deferred tick, none for any other tick.
    assert _job_ticks(engine, "test_tick") == [
        int(t.tick_at.timestamp()) for t in deferred
    ]
    assert len({t.job_id for t in deferred}) == len(deferred)
    for tick in ticks:
        if tick.tick_at <= paused_at - SECOND or tick.tick_at > resumed_at:
            assert tick.outcome == "deferred", tick
        elif paused_at < tick.tick_at < resumed_at - SECOND:
            assert (tick.outcome, tick.reason) == ("skipped", "paused"), tick

    overlap_ticks = _ticks(engine, "test_overlap")
    _assert_every_tick_decided_once(overlap_ticks, SECOND)
    assert {(t.outcome, t.reason) for t in overlap_ticks} <= {
        ("deferred", None),
        ("skipped", "queued"),
    }
    runs = _query(
        engine,
        "SELECT started_at, finished_at FROM job_runs WHERE task_name = "
        "'test_overlap' AND finished_at IS NOT NULL ORDER BY started_at",
    )
    for earlier, later in itertools.pairwise(runs):
        assert later.started_at >= earlier.finished_at


def test_restart_catches_up_a_catch_up_schedule_and_not_a_skip_one(
    db_url: str, engine: Engine
) -> None:
    env = _env(db_url, AGNT_TEST_SCHEDULES="test_catch_up,test_skip")
    period = 2 * SECOND
    with _workers(env):
        _wait_for(
            lambda: (
                len(_job_ticks(engine, "test_catch_up")) >= 2
                and len(_job_ticks(engine, "test_skip")) >= 2
            )
        )
    last_catch_up = _ticks(engine, "test_catch_up")[-1].tick_at
    last_skip = _ticks(engine, "test_skip")[-1].tick_at
    time.sleep(5)  # downtime: at least two ticks of each pass with no worker
    restarted_at = _db_now(engine)
    with _workers(env):
        _wait_for(
            lambda: (
                _ticks(engine, "test_catch_up")[-1].tick_at > restarted_at + period
                and _ticks(engine, "test_skip")[-1].tick_at > restarted_at + period
            )
        )

    # catch_up: every tick, those of the downtime included, deferred exactly once.
    ticks = _ticks(engine, "test_catch_up")
    _assert_every_tick_decided_once(ticks, period)
    assert {t.outcome for t in ticks} == {"deferred"}
    assert _job_ticks(engine, "test_catch_up") == [
        int(t.tick_at.timestamp()) for t in ticks
    ]
    caught_up = [t for t in ticks if last_catch_up < t.tick_at < restarted_at]
    assert len(caught_up) >= 2
    assert all(t.decided_at >= restarted_at for t in caught_up)

    # skip: the downtime's ticks are one 'missed' record and no job.
    after = [t for t in _ticks(engine, "test_skip") if t.tick_at > last_skip]
    missed = after[0]
    assert (missed.outcome, missed.reason) == ("skipped", "misfire")
    assert missed.missed_since == last_skip + period
    assert missed.tick_at - missed.missed_since >= period  # two ticks or more
    assert after[1].outcome == "deferred"
    assert after[1].tick_at == missed.tick_at + period
    skipped = range(
        int(missed.missed_since.timestamp()), int(missed.tick_at.timestamp()) + 1
    )
    assert not set(_job_ticks(engine, "test_skip")) & set(skipped)


def test_a_sigkilled_workers_job_is_retried_by_the_rescue_schedule(
    db_url: str, engine: Engine
) -> None:
    fast = {"AGNT_WORKER_HEARTBEAT_SECONDS": "0.5", "AGNT_STALLED_WORKER_SECONDS": "2"}
    subprocess.run(
        [BIN / "procrastinate", APP, "defer", "test_long"],
        env=_env(db_url),
        cwd=ROOT,
        check=True,
        capture_output=True,
    )

    def status() -> str | None:
        rows = _query(
            engine,
            "SELECT status::text FROM procrastinate_jobs WHERE task_name = 'test_long'",
        )
        return rows[0][0] if rows else None

    with _workers(_env(db_url, AGNT_TEST_LONG_SECONDS="60", **fast)) as [doomed]:
        _wait_for(lambda: status() == "doing")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    assert status() == "doing"  # nothing else will ever finish it

    rescuer_env = _env(
        db_url, AGNT_TEST_LONG_SECONDS="0.1", AGNT_TEST_FAST_RESCUE="1", **fast
    )
    with _workers(rescuer_env):
        _wait_for(lambda: status() == "succeeded")

    attempts = _query(
        engine,
        "SELECT attempt, status, error FROM job_runs WHERE task_name = 'test_long' "
        "ORDER BY attempt",
    )
    assert [(a.attempt, a.status) for a in attempts] == [
        (1, "failed"),
        (2, "succeeded"),
    ]
    assert attempts[0].error.startswith("WorkerLost:")
    rescues = _query(
        engine,
        "SELECT result FROM job_runs WHERE task_name = 'rescue_stalled_jobs' "
        "AND result->>'retried' = '1'",
    )
    assert len(rescues) == 1
