"""Running a piece of a benchmark in its own process, as a worker would run it, and
reading what that process cost: its wall time, its peak resident memory (the
kernel's ``ru_maxrss`` of exactly that child, from ``wait4``) and the JSON it
printed as its last line of output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ChildResult:
    output: dict[str, Any]
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float
    returncode: int
    stderr_tail: str


def child_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a child: ours, its database, text logs at WARNING (a
    child's logs are only read when it fails), and the checkout importable."""
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "AGNT_DATABASE_URL": database_url,
        "AGNT_LOG_FORMAT": "text",
        "AGNT_LOG_LEVEL": "WARNING",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
        **extra,
    }


def run_module(
    module: str, args: list[str], env: dict[str, str], timeout: float = 3600.0
) -> ChildResult:
    """Run ``python -m module args`` and wait for it; raise if it fails."""
    return run_command([sys.executable, "-m", module, *args], env, timeout=timeout)


def run_command(
    command: list[str],
    env: dict[str, str],
    cwd: Path = ROOT,
    timeout: float = 3600.0,
) -> ChildResult:
    """Run ``command`` and wait for it; raise if it fails, or prints nothing, or
    outlives ``timeout`` (then it is killed)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        timed_out = False
        while True:
            # wait4 of this pid gives this child's own rusage, where
            # getrusage(RUSAGE_CHILDREN) would give the largest of all children.
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                timed_out = True
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        lines = out.read().decode(errors="replace").strip().splitlines()
        stderr_tail = err.read().decode(errors="replace")[-2000:]
    if timed_out or process.returncode != 0 or not lines:
        ending = (
            f"was killed after {timeout:g}s"
            if timed_out
            else (f"exited {process.returncode}")
        )
        raise RuntimeError(f"{' '.join(command)} {ending}: {stderr_tail}")
    return ChildResult(
        output=json.loads(lines[-1]),
        seconds=seconds,
        # Linux reports ru_maxrss in KiB.
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3),
        returncode=process.returncode,
        stderr_tail=stderr_tail,
    )


def stop_all(processes: list[subprocess.Popen[Any]], timeout: float = 60.0) -> None:
    """SIGTERM every process still running, as an operator stops workers, then wait
    for each; one that outlives ``timeout`` is killed."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
