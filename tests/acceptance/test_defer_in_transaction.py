"""A real ``procrastinate worker`` and a backend's transactions: a worker declares
the jobs at start, a job deferred with ``agnt_defer`` in a transaction that
commits is run once, and one in a transaction that rolls back never is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def _one(db_url: str, query: str, params: list | None = None):
    with psycopg.connect(db_url, autocommit=True) as connection:
        return connection.execute(query, params).fetchone()


@pytest.mark.slow
def test_a_worker_runs_once_what_a_committed_transaction_deferred(db_url: str) -> None:
    env = {**os.environ, "AGNT_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [BIN / "procrastinate", "--app=agnt_jobs.app.app", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(
            lambda: _one(db_url, "SELECT 1 FROM declared_jobs WHERE id = 'selfcheck'")
        )
        with psycopg.connect(db_url) as backend:
            backend.execute("SELECT agnt_defer('selfcheck')")
            backend.rollback()
            job_id = backend.execute("SELECT agnt_defer('selfcheck')").fetchone()[0]
            backend.commit()
        _wait_for(
            lambda: _one(
                db_url,
                "SELECT 1 FROM job_runs WHERE job_id = %s AND status = 'succeeded'",
                [job_id],
            )
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert worker.returncode == 0, worker.stderr.read() if worker.stderr else ""
    runs = _one(
        db_url,
        "SELECT count(*), count(*) FILTER (WHERE job_id = %s) FROM job_runs "
        "WHERE task_name = 'selfcheck'",
        [job_id],
    )
    assert runs == (1, 1)
