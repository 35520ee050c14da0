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
def test_agnt_jobs_worker_refuses_an_unmigrated_database(
    server_url: str, tmp_path: Path
) -> None:
    import psycopg

    from tests.conftest import _with_dbname

    name = f"agnt_empty_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    try:
        result = subprocess.run(
            [BIN / "agnt-jobs", "worker"],
            env=_env(_with_dbname(server_url, name)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "agnt-jobs: the database is at revision base but this code needs "
        f"{_head()}: run 'agnt-jobs db upgrade'"
    ]


def _head() -> str:
    from agnt_jobs.db.migrate import head_revision

    return head_revision()


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
