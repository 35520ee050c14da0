"""A declaration Postgres would refuse never reaches it: `agnt-jobs schedules lint`
(run by `make lint`) and a starting worker stop on it with one line and exit 2,
before anything is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

BIN = Path(sys.executable).parent

# A periodic/ package of one declaration, placed before the real one on the path.
BAD_PERIODIC = """
from agnt_jobs.scheduler.declaration import Schedule

SCHEDULES = [Schedule("bad_cron", {cron!r}, "A cron Postgres refuses.")]
MAINTENANCE = []
DECLARED = SCHEDULES + MAINTENANCE
"""


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("0 9 L * *", "the day-of-month field 'L' has 'l': use 1 to 31"),
        ("0 0 30 2 *", "it never fires: no month in '2' has a day '30'"),
        ("@daily", "macros are not read: write '0 0 * * *' for @daily"),
    ],
)
@pytest.mark.parametrize("command", [["schedules", "lint"], ["worker"]])
def test_a_declaration_postgres_refuses_stops_the_command_with_one_line(
    tmp_path: Path,
    db_url: str,
    engine: Engine,
    command: list[str],
    cron: str,
    reason: str,
) -> None:
    (tmp_path / "periodic").mkdir()
    (tmp_path / "periodic" / "__init__.py").write_text(BAD_PERIODIC.format(cron=cron))
    result = subprocess.run(
        [BIN / "agnt-jobs", *command],
        env={**os.environ, "PYTHONPATH": str(tmp_path), "AGNT_DATABASE_URL": db_url},
        # Alembic puts the working directory first on the path: it must hold the
        # bad periodic/ too.
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line == (
        f"agnt-jobs: schedule bad_cron: invalid cron {cron!r}: {reason}: fix its "
        "declaration in periodic/"
    )
    with engine.connect() as connection:
        assert (
            connection.execute(sa.text("SELECT count(*) FROM schedules")).scalar() == 0
        )


def test_the_declarations_pass_the_lint() -> None:
    result = subprocess.run(
        [BIN / "agnt-jobs", "schedules", "lint"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("declarations: each one Postgres accepts\n")
