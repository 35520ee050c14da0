"""With no AGNT_DATABASE_URL, commands start (or join) an embedded Postgres in
AGNT_DATA_DIR and migrate it; two processes at once share one server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_two_commands_share_one_migrated_embedded_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AGNT_DATABASE_URL"}
    env["AGNT_DATA_DIR"] = str(tmp_path / "agnt")
    commands = [
        subprocess.Popen(
            [BIN / "agnt-jobs", "db", "current"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [command.communicate(timeout=120) for command in commands]
    for command, (stdout, stderr) in zip(commands, outputs, strict=True):
        assert command.returncode == 0, stderr
        database, head = stdout.splitlines()
        assert database.split(": ")[1] == head.split(": ")[1]
    assert (tmp_path / "agnt" / "pgdata" / "PG_VERSION").exists()
