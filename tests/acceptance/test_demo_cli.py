"""``agnt-jobs demo seed`` as an operator runs it: it seeds an empty database, and
refuses one with data in one line, exit 2, changing nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

BIN = Path(sys.executable).parent


def _seed(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGNT_DATABASE_URL": db_url, "AGNT_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [BIN / "agnt-jobs", "demo", "seed", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _users(db_url: str) -> int:
    with psycopg.connect(db_url) as connection:
        return connection.execute("SELECT count(*) FROM users").fetchone()[0]


@pytest.mark.slow
def test_seeds_an_empty_database_and_refuses_a_full_one(db_url: str) -> None:
    first = _seed(db_url, "--at", "2026-11-25T14:00:00+08:00")
    assert first.returncode == 0, first.stderr
    assert "bookings: bookings 10,000" in first.stdout
    assert "around 2026-11-25T06:00:00+00:00" in first.stdout
    users = _users(db_url)

    again = _seed(db_url)
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1
    assert again.stderr.startswith("agnt-jobs: table users already has rows")
    assert _users(db_url) == users

    no_zone = _seed(db_url, "--at", "2026-11-25T14:00", "--force")
    assert no_zone.returncode == 2 and "needs a zone" in no_zone.stderr
    assert _users(db_url) == users
