"""Real ``procrastinate worker`` processes on one database, over real ticks of the
seconds-level schedules of ``tests/acceptance/ticking_app.py``: each tick deferred
once by three workers, runs of one job never overlapping, pause and resume, catch-up
after a restart, and a SIGKILLed worker's job rescued by the maintenance schedule.

No timing asserts: the tests wait for outcomes and check them in the database.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import time
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from tests.support import ticking
from tests.support.ticking import APP, BIN, ROOT, SECOND

pytestmark = pytest.mark.slow


def test_three_workers_defer_each_tick_once_without_overlap_and_honour_pause(
    db_url: str, engine: Engine
) -> None:
    env = ticking.env(db_url, AGNT_TEST_SCHEDULES="test_tick,test_overlap")
    with ticking.workers(env, count=3):
        ticking.wait_for(lambda: len(ticking.job_ticks(engine, "test_tick")) >= 4)
        paused_at = ticking.set_enabled(engine, "test_tick", False)
        ticking.wait_for(
            lambda: (
                ticking.ticks(engine, "test_tick")[-1].tick_at > paused_at + 2 * SECOND
            )
        )
        resumed_at = ticking.set_enabled(engine, "test_tick", True)
        ticking.wait_for(
            lambda: (
                ticking.ticks(engine, "test_tick")[-1].tick_at > resumed_at + 2 * SECOND
            )
        )
        ticking.wait_for(
            lambda: (
                len(
                    ticking.query(
                        engine,
                        "SELECT 1 FROM job_runs WHERE task_name = 'test_overlap' "
                        "AND finished_at IS NOT NULL",
                    )
                )
                >= 3
            )
        )

    ticks = ticking.ticks(engine, "test_tick")
    ticking.assert_every_tick_decided_once(ticks, SECOND)
    deferred = [t for t in ticks if t.outcome == "deferred"]
    # One job per deferred tick, none for any other tick.
    assert ticking.job_ticks(engine, "test_tick") == [
        int(t.tick_at.timestamp()) for t in deferred
    ]
    assert len({t.job_id for t in deferred}) == len(deferred)
    # Every tick decided after the pause committed is skipped, by whichever worker
    # decided it; every tick decided before it or after the resume runs. (Half a
    # second either side: the times are read just after each commit.)
    margin = timedelta(seconds=0.5)
    for tick in ticks:
        if tick.decided_at < paused_at - margin or tick.decided_at > resumed_at:
            assert tick.outcome == "deferred", tick
        elif paused_at < tick.decided_at < resumed_at - margin:
            assert (tick.outcome, tick.reason) == ("skipped", "paused"), tick
    assert any(tick.reason == "paused" for tick in ticks)

    overlap_ticks = ticking.ticks(engine, "test_overlap")
    ticking.assert_every_tick_decided_once(overlap_ticks, SECOND)
    # A tick whose previous run still waits is skipped (at most one waits); on a
    # loaded machine a pass can also come late enough to miss one.
    assert {(t.outcome, t.reason) for t in overlap_ticks} <= {
        ("deferred", None),
        ("skipped", "queued"),
        ("skipped", "missed"),
    }
    runs = ticking.query(
        engine,
        "SELECT started_at, finished_at FROM job_runs WHERE task_name = "
        "'test_overlap' AND finished_at IS NOT NULL ORDER BY started_at",
    )
    for earlier, later in itertools.pairwise(runs):
        assert later.started_at >= earlier.finished_at


def test_restart_catches_up_a_catch_up_schedule_and_not_a_skip_one(
    db_url: str, engine: Engine
) -> None:
    # A small tolerance, so that even the latest tick missed by a skip schedule
    # during the downtime is not run when the worker comes back.
    env = ticking.env(
        db_url,
        AGNT_TEST_SCHEDULES="test_catch_up,test_skip",
        AGNT_SCHEDULE_MISFIRE_TOLERANCE_SECONDS="0.5",
    )
    period = 2 * SECOND
    with ticking.workers(env):
        ticking.wait_for(
            lambda: (
                len(ticking.job_ticks(engine, "test_catch_up")) >= 2
                and len(ticking.job_ticks(engine, "test_skip")) >= 2
            )
        )
    last_catch_up = ticking.ticks(engine, "test_catch_up")[-1].tick_at
    last_skip = ticking.ticks(engine, "test_skip")[-1].tick_at
    time.sleep(5)  # downtime: at least two ticks of each pass with no worker
    restarted_at = ticking.db_now(engine)
    with ticking.workers(env):
        ticking.wait_for(
            lambda: (
                ticking.ticks(engine, "test_catch_up")[-1].tick_at
                > restarted_at + period
                and ticking.ticks(engine, "test_skip")[-1].tick_at
                > restarted_at + period
            )
        )

    # catch_up: every tick, those of the downtime included, deferred exactly once.
    ticks = ticking.ticks(engine, "test_catch_up")
    ticking.assert_every_tick_decided_once(ticks, period)
    assert {t.outcome for t in ticks} == {"deferred"}
    assert ticking.job_ticks(engine, "test_catch_up") == [
        int(t.tick_at.timestamp()) for t in ticks
    ]
    caught_up = [t for t in ticks if last_catch_up < t.tick_at < restarted_at]
    assert len(caught_up) >= 2
    assert all(t.decided_at >= restarted_at for t in caught_up)

    # skip: every tick decided once; the downtime's recorded missed, none run.
    after = [t for t in ticking.ticks(engine, "test_skip") if t.tick_at > last_skip]
    decided = ticking.decided(after, period)
    assert decided == [last_skip + (i + 1) * period for i in range(len(decided))]
    deferred = [int(t.tick_at.timestamp()) for t in after if t.outcome == "deferred"]
    downtime = [t for t in decided if t < restarted_at]
    assert len(downtime) >= 2
    assert not {int(t.timestamp()) for t in downtime} & set(deferred)
    assert [
        t for t in ticking.job_ticks(engine, "test_skip") if t > last_skip.timestamp()
    ] == (deferred)


def test_a_sigkilled_workers_job_is_retried_by_the_rescue_schedule(
    db_url: str, engine: Engine
) -> None:
    fast = {"AGNT_WORKER_HEARTBEAT_SECONDS": "0.5", "AGNT_STALLED_WORKER_SECONDS": "2"}
    subprocess.run(
        [BIN / "procrastinate", APP, "defer", "test_long"],
        env=ticking.env(db_url),
        cwd=ROOT,
        check=True,
        capture_output=True,
    )

    def status() -> str | None:
        rows = ticking.query(
            engine,
            "SELECT status::text FROM procrastinate_jobs WHERE task_name = 'test_long'",
        )
        return rows[0][0] if rows else None

    def body_started() -> bool:
        return bool(
            ticking.query(
                engine, "SELECT 1 FROM job_runs WHERE task_name = 'test_long'"
            )
        )

    with ticking.workers(ticking.env(db_url, AGNT_TEST_LONG_SECONDS="60", **fast)) as [
        doomed
    ]:
        ticking.wait_for(body_started)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    assert status() == "doing"  # nothing else will ever finish it

    rescuer_env = ticking.env(
        db_url, AGNT_TEST_LONG_SECONDS="0.1", AGNT_TEST_FAST_RESCUE="1", **fast
    )
    with ticking.workers(rescuer_env):
        ticking.wait_for(lambda: status() == "succeeded")

    attempts = ticking.query(
        engine,
        "SELECT attempt, status, error FROM job_runs WHERE task_name = 'test_long' "
        "ORDER BY attempt",
    )
    assert [(a.attempt, a.status) for a in attempts] == [
        (1, "failed"),
        (2, "succeeded"),
    ]
    assert attempts[0].error.startswith("WorkerLost:")
    rescues = ticking.query(
        engine,
        "SELECT result FROM job_runs WHERE task_name = 'rescue_stalled_jobs' "
        "AND (result->>'retried')::int > 0",
    )
    # Retried once: by a run of the rescue job, or by the same pass that every
    # worker runs between them, whichever came first.
    assert len(rescues) <= 1
