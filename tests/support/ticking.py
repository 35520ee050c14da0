"""Real workers over the seconds-level schedules of ``tests/acceptance/ticking_app.py``,
and what they decided, read from ``schedule_ticks`` and the queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler.declaration import Misfire, Schedule

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
APP = "--app=tests.acceptance.ticking_app.app"

# The seconds-level schedules the ticking app declares (data only: importing the app
# itself registers its bodies in this process).
SCHEDULES = {
    "test_tick": Schedule("test_tick", "* * * * * *", "Each second.", Misfire.CATCH_UP),
    "test_overlap": Schedule("test_overlap", "* * * * * *", "Every second."),
    "test_catch_up": Schedule(
        "test_catch_up", "* * * * * */2", "Every 2 s.", Misfire.CATCH_UP
    ),
    "test_skip": Schedule("test_skip", "* * * * * */2", "Every 2 s."),
    "test_chunks": Schedule("test_chunks", "* * * * * */3", "Every 3 s."),
}
SECOND = timedelta(seconds=1)


def env(db_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "AGNT_DATABASE_URL": db_url,
        "PYTHONPATH": str(ROOT),
        "AGNT_LOG_FORMAT": "text",
        **extra,
    }


def wait_for(predicate: Callable[[], bool], timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@contextmanager
def workers(
    env: dict[str, str],
    count: int = 1,
    logs: Path | None = None,
    stop_timeout: float = 30,
) -> Iterator[list[subprocess.Popen]]:
    """``count`` stock workers on the ticking app; with ``logs``, each writes its
    log to ``logs / f"w{n}.log"``. At the end each is sent SIGTERM and given
    ``stop_timeout`` seconds to exit."""
    with ExitStack() as files:
        processes = [
            subprocess.Popen(
                [BIN / "procrastinate", APP, "worker", f"--name=w{n}"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=files.enter_context((logs / f"w{n}.log").open("w"))
                if logs
                else subprocess.DEVNULL,
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
            process.wait(timeout=stop_timeout)


def query(engine: Engine, sql: str, **params: object) -> list[sa.Row]:
    with engine.connect() as connection:
        return list(connection.execute(sa.text(sql), params))


def ticks(engine: Engine, schedule_id: str) -> list[sa.Row]:
    return query(
        engine,
        "SELECT tick_at, outcome, reason, missed_since, job_id, decided_at "
        "FROM schedule_ticks WHERE schedule_id = :id ORDER BY tick_at",
        id=schedule_id,
    )


def job_ticks(engine: Engine, task: str) -> list[int]:
    rows = query(
        engine,
        "SELECT (args->>'timestamp')::bigint FROM procrastinate_jobs "
        "WHERE task_name = :t ORDER BY 1",
        t=task,
    )
    return [row[0] for row in rows]


def db_now(engine: Engine) -> datetime:
    return query(engine, "SELECT now()")[0][0]


def set_enabled(engine: Engine, schedule_id: str, enabled: bool) -> datetime:
    """Flip the switch with plain SQL, as an operator may; the commit time."""
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE schedules SET enabled = :e WHERE id = :id"),
            {"e": enabled, "id": schedule_id},
        )
    return db_now(engine)


def decided(ticks: list[sa.Row], period: timedelta) -> list[datetime]:
    """Every tick instant the decisions cover (a missed range covers several)."""
    instants = []
    for tick in ticks:
        instant = tick.missed_since or tick.tick_at
        while instant <= tick.tick_at:
            instants.append(instant)
            instant += period
    return instants


def assert_every_tick_decided_once(ticks: list[sa.Row], period: timedelta) -> None:
    instants = decided(ticks, period)
    assert instants == [instants[0] + i * period for i in range(len(instants))]
