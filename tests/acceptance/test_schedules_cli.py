"""The ``agnt-jobs schedules`` and ``agnt-jobs run`` commands as an operator runs
them: real processes, a real database, one-line errors and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support.schedules import declare_earlier

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _agnt(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``agnt-jobs`` on ``db_url``, with no channel gateway or Stripe configured."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AGNT_CHANNEL_GATEWAY_URL", "AGNT_STRIPE_API_KEY")
    }
    return subprocess.run(
        [BIN / "agnt-jobs", *args],
        env={**env, "AGNT_DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _rows(engine: Engine, sql: str) -> list[sa.Row]:
    with engine.connect() as connection:
        return list(connection.execute(sa.text(sql)))


def test_unknown_ids_are_one_line_exit_2_and_write_nothing(
    db_url: str, engine: Engine
) -> None:
    for args, message in [
        (("schedules", "pause", "nope"), "unknown schedule 'nope'"),
        (("schedules", "resume", "nope"), "unknown schedule 'nope'"),
        (("run", "nope"), "unknown job 'nope'"),
    ]:
        result = _agnt(db_url, *args)
        assert result.returncode == 2, args
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"agnt-jobs: {message}")
    assert _rows(engine, "SELECT id FROM schedules") == []
    assert _rows(engine, "SELECT id FROM procrastinate_jobs") == []


def test_pause_and_resume_then_list_as_json(db_url: str, engine: Engine) -> None:
    assert _agnt(db_url, "schedules", "pause", "booking_reminders").returncode == 0
    assert _rows(engine, "SELECT id, enabled FROM schedules") == [
        ("booking_reminders", False)
    ]
    result = _agnt(
        db_url, "schedules", "list", "--json", "--now", "2028-02-28T23:30:00+08:00"
    )
    assert result.returncode == 0, result.stderr
    listed = {entry["id"]: entry for entry in json.loads(result.stdout)}
    assert len(listed) == 42
    reminders = listed["booking_reminders"]
    assert reminders["enabled"] is False
    assert reminders["next_run_at"] == "2028-02-29T00:00:00+08:00"
    assert reminders["has_body"] is True
    assert listed["monthly_invoice"]["next_run_at"] == "2028-03-01T09:00:00+08:00"
    assert listed["rescue_stalled_jobs"]["has_body"] is True

    assert _agnt(db_url, "schedules", "resume", "booking_reminders").returncode == 0
    assert _rows(engine, "SELECT enabled FROM schedules") == [(True,)]


def test_list_without_a_database_shows_the_code() -> None:
    result = _agnt("postgresql://nobody@127.0.0.1:1/none", "schedules", "list")
    assert result.returncode == 0
    assert result.stderr.startswith("agnt-jobs: no database state (")
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "ID", "CRON", "ZONE", "POLICY", "ENABLED", "NEXT", "RUN", "LAST", "RUN", "BODY",
        "NOT", "CONFIGURED", "OVERRIDDEN",
    ]  # fmt: skip
    assert len(lines) == 43
    assert lines[1].split()[:4] == ["booking_reminders", "0", "*", "*"]
    assert lines[1].split()[-2:] == ["-", "-"]
    by_id = {line.split()[0]: line.split() for line in lines[1:]}
    assert by_id["deliver_reminders"][-2] == "AGNT_CHANNEL_GATEWAY_URL"
    assert by_id["monthly_invoice"][-2] == "AGNT_STRIPE_API_KEY"


def test_check_reports_a_dropped_schedule(db_url: str, engine: Engine) -> None:
    with engine.begin() as connection:
        declare_earlier(connection, "legacy_job", description="Gone.")
    result = _agnt(db_url, "schedules", "check")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("dropped: legacy_job is active in the database")
        for line in lines
    )
    assert not any(line.startswith("no_body:") for line in lines)
    assert any(line.startswith("not_deployed: rescue_stalled_jobs ") for line in lines)

    # Once a worker with this code has marked it removed, it is shown, not failed.
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE schedules SET removed_at = now()"))
    lines = _agnt(db_url, "schedules", "check").stdout.splitlines()
    assert not any(line.startswith("dropped:") for line in lines)
    assert any(line.startswith("removed (ok): legacy_job ") for line in lines)


@pytest.mark.slow
def test_run_wait_and_a_manual_defer_of_a_periodic_job(
    db_url: str, engine: Engine
) -> None:
    env = {**os.environ, "AGNT_DATABASE_URL": db_url}
    # A periodic job deferred by hand with no arguments: its tick is now. (Before
    # the worker starts, whose deferrer would otherwise queue this job first.)
    subprocess.run(
        [
            BIN / "procrastinate",
            "--app=agnt_jobs.app.app",
            "defer",
            "rescue_stalled_jobs",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    [(job_id,)] = _rows(engine, "SELECT id FROM procrastinate_jobs WHERE args = '{}'")
    worker = subprocess.Popen(
        [BIN / "procrastinate", "--app=agnt_jobs.app.app", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        result = _agnt(db_url, "run", "selfcheck", "--wait", "--timeout", "30")
        assert result.returncode == 0, result.stderr
        deferred, finished = result.stdout.strip().splitlines()
        assert deferred.startswith("selfcheck: deferred as job ")
        assert finished.startswith("selfcheck: job ")
        assert ' succeeded: {"database_ms": ' in finished
        # Following it to the end, or the run that already waits.
        result = _agnt(db_url, "run", "rescue_stalled_jobs", "--wait")
        assert result.returncode == 0, result.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    [(status, trigger, tick)] = _rows(
        engine,
        f"SELECT status, trigger, scheduled_tick FROM job_run_audit "
        f"WHERE job_id = {job_id}",
    )
    assert (status, trigger, tick) == ("succeeded", "manual", None)
