"""``make demo``'s command, ``agnt-jobs demo run``, on a fresh embedded database:
the demo data, the stand-ins and the worker come up, every job is run once, and
every one of them succeeds, with the stand-ins on a port of their own; Ctrl-C
stops it all."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agnt_jobs.db.migrate import PROJECT_ROOT
from tests.support.new_user import environment, free_port, postgres_running

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def test_make_demo_runs_every_job_and_each_succeeds(
    tmp_path: Path, embedded_dir: Path
) -> None:
    data_dir, log = embedded_dir / "demo", tmp_path / "demo.log"
    # The port the stand-ins once took is busy: held here, or by someone else.
    busy = socket.socket()
    with contextlib.suppress(OSError):
        busy.bind(("127.0.0.1", 8790))
        busy.listen(1)
    env = environment(
        AGNT_DATA_DIR=str(data_dir),
        AGNT_ADMIN_PORT=str(free_port()),
        AGNT_LOG_FORMAT="text",
    )
    process = subprocess.Popen(
        [BIN / "agnt-jobs", "demo", "run", "--timeout", "240"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    started = time.monotonic()
    try:
        while not re.search(r"demo: (all \d+|\d+ of \d+) jobs", log.read_text()):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() - started < 300, "the demo never finished"
            time.sleep(1)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
        busy.close()
    output = log.read_text()
    stand_ins = re.search(r"stand-ins: http://127\.0\.0\.1:(\d+)", output)
    assert stand_ins and stand_ins.group(1) != "8790", output[-3000:]
    summary = re.search(r"demo: all (\d+) jobs succeeded", output)
    assert summary, [line for line in output.splitlines() if line.startswith("demo")]
    assert int(summary.group(1)) == 43  # the 40 jobs and the 3 maintenance jobs
    assert code == 0
    assert not postgres_running(data_dir)
