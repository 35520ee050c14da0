"""Bad settings and unmigrated databases, through every command an operator runs:
one line on stderr saying what to do, a non-zero exit, and nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs.db.migrate import head_revision

BIN = Path(sys.executable).parent
APP = "--app=agnt_jobs.app.app"

pytestmark = pytest.mark.slow


def _run(args: list[str | Path], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _tables(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        return [
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        ]


@pytest.mark.parametrize(
    "command",
    [
        [BIN / "agnt-jobs", "worker"],
        [BIN / "agnt-jobs", "worker", "--name", "w1"],
        [BIN / "agnt-jobs", "run", "booking_reminders"],
        [BIN / "agnt-jobs", "run", "booking_reminders", "--wait"],
        [BIN / "agnt-jobs", "schedules", "pause", "booking_reminders"],
        [BIN / "agnt-jobs", "schedules", "resume", "booking_reminders"],
        [BIN / "agnt-jobs", "schedules", "check"],
        [BIN / "agnt-jobs", "admin", "--port", "1"],
        [BIN / "agnt-jobs", "demo", "seed"],
        [BIN / "procrastinate", APP, "worker"],
        [BIN / "procrastinate", APP, "defer", "booking_reminders"],
    ],
    ids=lambda command: " ".join(str(part) for part in command[1:]),
)
def test_an_unmigrated_database_is_one_line_and_nothing_written(
    empty_url: str, command: list[str | Path]
) -> None:
    result = _run(command, AGNT_DATABASE_URL=empty_url, INTERNAL_API_TOKEN="x" * 32)
    expected = (
        f"the database is at revision base but this code needs {head_revision()}: "
        "run 'agnt-jobs db upgrade'"
    )
    ours = command[0] == BIN / "agnt-jobs"
    prefix = "agnt-jobs: " if ours else ""
    assert result.returncode == (2 if ours else 1)
    assert result.stderr.strip().splitlines() == [prefix + expected], result.stderr
    assert _tables(empty_url) == []


@pytest.mark.parametrize(
    "command",
    [
        [BIN / "procrastinate", APP, "worker"],
        [BIN / "procrastinate", APP, "defer", "selfcheck"],
        [BIN / "agnt-jobs", "worker"],
        [BIN / "agnt-jobs", "db", "current"],
    ],
    ids=lambda command: " ".join(str(part) for part in command[1:]),
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    db_url: str, command: list[str | Path]
) -> None:
    result = _run(command, AGNT_DATABASE_URL=db_url, AGNT_WORKER_CONCURRENCY="abc")
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert "invalid setting AGNT_WORKER_CONCURRENCY: 'abc'" in line


def test_a_multi_host_url_reaches_the_host_that_answers(server_url: str) -> None:
    """libpq's failover form: the first host is down, the second is the primary."""
    with psycopg.connect(server_url) as connection:
        info = connection.info
        # A socket directory (the embedded server) goes in percent-encoded.
        host, port, user = quote(info.host, safe=""), info.port, info.user
    url = (
        f"postgresql://{user}@127.0.0.1:1,{host}:{port}/postgres"
        "?target_session_attrs=read-write"
    )
    result = _run([BIN / "agnt-jobs", "db", "current"], AGNT_DATABASE_URL=url)
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith("database: "), result.stderr
    assert f"code head: {head_revision()}" in result.stdout


def test_running_a_job_that_is_not_configured_is_one_line_and_defers_nothing(
    db_url: str, engine: Engine
) -> None:
    env = {**os.environ, "AGNT_DATABASE_URL": db_url}
    env.pop("AGNT_CHANNEL_GATEWAY_URL", None)
    result = subprocess.run(
        [BIN / "agnt-jobs", "run", "deliver_reminders"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "deliver_reminders is not configured: set AGNT_CHANNEL_GATEWAY_URL" in line
    with engine.connect() as connection:
        assert (
            connection.execute(
                sa.text("SELECT count(*) FROM procrastinate_jobs")
            ).scalar_one()
            == 0
        )


@pytest.mark.parametrize(
    "command",
    [[BIN / "agnt-jobs", "admin"], [BIN / "agnt-jobs", "worker", "--admin"]],
    ids=["admin", "worker --admin"],
)
def test_a_short_admin_token_is_refused_with_how_to_make_one(
    db_url: str, command: list[str | Path]
) -> None:
    result = _run(command, AGNT_DATABASE_URL=db_url, INTERNAL_API_TOKEN="a")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "INTERNAL_API_TOKEN has 1 characters: use at least 32" in line
    assert "secrets.token_urlsafe(32)" in line
