"""One log format: the stock ``procrastinate worker`` on our App writes the lines
``agnt-jobs worker`` writes — JSON when stderr is a file or a pipe, short text at
a terminal — and a run stopped at a checkpoint is one line at INFO, no traceback."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SLOW_APP = "--app=tests.acceptance.slow_app.app"
# Printed by Procrastinate's CLI itself (not logged): the one line that is not ours.
BANNER = "Launching a worker on all queues"
TEXT_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO |WARNING|ERROR|CRITICAL) \S")

pytestmark = pytest.mark.slow


def _env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AGNT_LOG_FORMAT"}
    return {**env, "AGNT_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT), **extra}


def _wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line == BANNER:
            continue
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    return lines


def test_the_stock_worker_writes_our_lines_and_a_stopped_run_is_one_line(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text("CREATE TABLE test_steps (step int PRIMARY KEY, job_id bigint)")
        )
    env = _env(
        db_url,
        AGNT_SHUTDOWN_GRACEFUL_TIMEOUT="1",
        AGNT_TEST_STEPS="200",
        AGNT_TEST_STEP_SECONDS="0.1",
    )
    subprocess.run(
        [BIN / "procrastinate", SLOW_APP, "defer", "test_steps"],
        env=env,
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    log = tmp_path / "worker.log"
    with log.open("w") as stderr:
        worker = subprocess.Popen(
            [BIN / "procrastinate", SLOW_APP, "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=ROOT,
        )

        def steps() -> int:
            with engine.connect() as connection:
                return connection.execute(
                    sa.text("SELECT count(*) FROM test_steps")
                ).scalar_one()

        try:
            _wait_for(lambda: steps() >= 3)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0
    text = log.read_text()
    lines = _json_lines(text)
    assert "Traceback" not in text
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    # Our own lines (the schedules' sync, the deferrer) and Procrastinate's alike.
    assert any(line["logger"].startswith("agnt_jobs.") for line in lines)
    (stopped,) = [line for line in lines if line.get("action") == "job_aborted_retry"]
    assert stopped["level"] == "INFO"
    assert stopped["error"] == (
        "RunStopped: stopped at a checkpoint: worker shutting down"
    )
    assert "exception" not in stopped


def _at_a_terminal(args: list[str | Path], env: dict[str, str], ready: str) -> str:
    """Run a worker with its stderr on a terminal until ``ready`` shows, then stop
    it; what it wrote there."""
    controller, terminal = pty.openpty()
    worker = subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        cwd=ROOT,
    )
    os.close(terminal)
    written = b""
    deadline = time.monotonic() + 60
    try:
        while ready.encode() not in written and time.monotonic() < deadline:
            readable, _, _ = select.select([controller], [], [], 0.5)
            if readable:
                try:
                    written += os.read(controller, 65536)
                except OSError:
                    break
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        os.close(controller)
    assert ready.encode() in written, written.decode(errors="replace")[-2000:]
    return written.decode(errors="replace").replace("\r\n", "\n")


def test_at_a_terminal_both_workers_write_short_lines(db_url: str) -> None:
    env = _env(db_url)
    for args in (
        [BIN / "procrastinate", "--app=agnt_jobs.app.app", "worker"],
        [BIN / "agnt-jobs", "worker"],
    ):
        text = _at_a_terminal(args, env, ready="Starting worker on all queues")
        lines = [line for line in text.splitlines() if line and line != BANNER]
        assert lines, text
        for line in lines:
            assert TEXT_LINE.match(line), f"{args[0]}: {line!r}"
            assert len(line) < 400, line
            assert not line.startswith("{")
