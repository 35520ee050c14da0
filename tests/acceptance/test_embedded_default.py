"""With no AGNT_DATABASE_URL, commands start (or join) an embedded Postgres in
AGNT_DATA_DIR and migrate it; two processes at once share one server; and the
schema tools (``alembic``, ``agnt-jobs db``) work on it as they do on a URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agnt_jobs.db.migrate import PROJECT_ROOT

BIN = Path(sys.executable).parent


def _embedded_env(data_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AGNT_DATABASE_URL"}
    env["AGNT_DATA_DIR"] = str(data_root / "agnt")
    return env


def _run(args: list[str | Path], env: dict[str, str], exit_code: int = 0) -> str:
    done = subprocess.run(
        args, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == exit_code, f"{args}: {done.stderr}"
    return done.stdout + done.stderr


@pytest.mark.slow
def test_two_commands_share_one_migrated_embedded_server(embedded_dir: Path) -> None:
    env = _embedded_env(embedded_dir)
    commands = [
        subprocess.Popen(
            [BIN / "agnt-jobs", "db", "upgrade"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [command.communicate(timeout=180) for command in commands]
    for command, (_, stderr) in zip(commands, outputs, strict=True):
        assert command.returncode == 0, stderr
    database, head = _run([BIN / "agnt-jobs", "db", "current"], env).splitlines()
    assert database.split(": ")[1] == head.split(": ")[1]
    assert (embedded_dir / "agnt" / "pgdata" / "PG_VERSION").exists()


@pytest.mark.slow
def test_alembic_round_trip_on_the_embedded_default(embedded_dir: Path) -> None:
    """``alembic`` reads the same settings: with no URL it works on the embedded
    server, and sees the schema as it is rather than migrating it on the way in."""
    env = _embedded_env(embedded_dir)
    alembic = BIN / "alembic"
    _run([alembic, "upgrade", "head"], env)
    assert "(head)" in _run([alembic, "current"], env)
    _run([alembic, "downgrade", "base"], env)
    # Exit 1: the database is not at the code's head.
    current = _run([BIN / "agnt-jobs", "db", "current"], env, exit_code=1)
    assert "database: base (empty)" in current
    _run([alembic, "upgrade", "head"], env)
    assert "No new upgrade operations detected" in _run([alembic, "check"], env)
