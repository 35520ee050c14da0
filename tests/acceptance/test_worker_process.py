"""Real processes, as an operator runs them: the stock ``procrastinate`` CLI against
our App, and ``agnt-jobs`` commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _env(db_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "AGNT_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT), **extra}


def _wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def _job_status(engine: Engine, task: str) -> str | None:
    with engine.connect() as connection:
        return connection.execute(
            sa.text(
                "SELECT status::text FROM procrastinate_jobs WHERE task_name = :t "
                "ORDER BY id DESC LIMIT 1"
            ),
            {"t": task},
        ).scalar()


@pytest.mark.slow
def test_stock_cli_defers_and_worker_runs(db_url: str, engine: Engine) -> None:
    env = _env(db_url)
    subprocess.run(
        [BIN / "procrastinate", "--app=agnt_jobs.app.app", "defer", "selfcheck"],
        env=env,
        check=True,
        capture_output=True,
    )
    worker = subprocess.Popen(
        [BIN / "procrastinate", "--app=agnt_jobs.app.app", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: _job_status(engine, "selfcheck") == "succeeded")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)
    with engine.connect() as connection:
        status = connection.execute(
            sa.text("SELECT status FROM job_runs WHERE task_name = 'selfcheck'")
        ).scalar_one()
    assert status == "succeeded"


@pytest.mark.slow
def test_sigterm_finishes_the_running_job_then_exits_zero(
    db_url: str, engine: Engine
) -> None:
    env = _env(db_url, AGNT_TEST_SLOW_SECONDS="3")
    app_path = "--app=tests.acceptance.slow_app.app"
    subprocess.run(
        [BIN / "procrastinate", app_path, "defer", "test_slow"],
        env=env,
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    worker = subprocess.Popen(
        [BIN / "procrastinate", app_path, "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    _wait_for(lambda: _job_status(engine, "test_slow") == "doing")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert _job_status(engine, "test_slow") == "succeeded"


@pytest.mark.slow
def test_sigterm_stops_a_long_job_at_a_checkpoint_and_another_worker_finishes_it(
    db_url: str, engine: Engine
) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text("CREATE TABLE test_steps (step int PRIMARY KEY, job_id bigint)")
        )
    env = _env(
        db_url,
        AGNT_SHUTDOWN_GRACEFUL_TIMEOUT="3",
        AGNT_TEST_STEPS="60",
        AGNT_TEST_STEP_SECONDS="0.2",
    )
    app_path = "--app=tests.acceptance.slow_app.app"
    subprocess.run(
        [BIN / "procrastinate", app_path, "defer", "test_steps"],
        env=env,
        check=True,
        capture_output=True,
        cwd=ROOT,
    )

    def steps_done() -> int:
        with engine.connect() as connection:
            return connection.execute(
                sa.text("SELECT count(*) FROM test_steps")
            ).scalar_one()

    first = subprocess.Popen(
        [BIN / "procrastinate", app_path, "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    _wait_for(lambda: steps_done() >= 5)
    signalled = time.monotonic()
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
    # Three seconds of grace, then the job stops at its next checkpoint (a step
    # takes 0.2 s): well before its 12 s of work are done.
    assert time.monotonic() - signalled < 3 + 3
    stopped_at = steps_done()
    assert 5 <= stopped_at < 60
    assert _job_status(engine, "test_steps") == "todo"  # to be retried

    second = subprocess.Popen(
        [BIN / "procrastinate", app_path, "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        _wait_for(lambda: _job_status(engine, "test_steps") == "succeeded", 60)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    with engine.connect() as connection:
        steps = connection.execute(
            sa.text("SELECT step FROM test_steps ORDER BY step")
        ).scalars()
        runs = connection.execute(
            sa.text(
                "SELECT status, error, result FROM job_runs "
                "WHERE task_name = 'test_steps' ORDER BY attempt"
            )
        ).all()
    assert list(steps) == list(range(1, 61))  # every step once (its primary key)
    [(stopped, error, _), (succeeded, _, result)] = runs
    assert stopped == "stopped" and "worker shutting down" in error
    assert succeeded == "succeeded" and result == {"steps": 60 - stopped_at}


def test_bad_setting_is_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [BIN / "agnt-jobs", "db", "current"],
        env={**os.environ, "AGNT_WORKER_CONCURRENCY": "lots"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "agnt-jobs: invalid setting AGNT_WORKER_CONCURRENCY: 'lots': Input should be "
        "a valid integer, unable to parse string as an integer"
    ]


def test_unreachable_database_is_one_line() -> None:
    result = subprocess.run(
        [BIN / "agnt-jobs", "db", "current"],
        env={
            **os.environ,
            "AGNT_DATABASE_URL": "postgresql://nobody:secret@127.0.0.1:1/nothing",
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("agnt-jobs: cannot reach the database")
    assert "secret" not in result.stderr


def test_unknown_command_and_missing_argument_are_one_line() -> None:
    for argv, expected in (
        (["frobnicate"], "agnt-jobs: No such command 'frobnicate'."),
        (["db", "downgrade"], "agnt-jobs: Missing argument 'revision'."),
    ):
        result = subprocess.run(
            [BIN / "agnt-jobs", *argv], capture_output=True, text=True
        )
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"{expected} Run 'agnt-jobs --help'."
        ]
