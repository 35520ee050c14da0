"""Change to effect: three ``agnt-jobs worker`` processes run, an operator
changes a schedule's cron with a plain SQL UPDATE, and each worker logs the moment
its deferrer follows the new cron (``schedule_change_applied``, after the table's
NOTIFY woke it and its pass read the row). Measured: seconds from just before the
UPDATE to each worker's line, over repeated changes; p50, p99 and max across
workers and changes.

The baseline is the primitive underneath: a bare LISTEN/NOTIFY round trip to three
listening connections, measured the same way in the same run. The worker's share
is the difference (waking the deferrer, its pass over the table, the log line).
No decision can use stale values whatever this latency is: the tick function
refuses a plan made on replaced values (docs/changing-schedules.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from agnt_jobs.bench.base import BenchContext, wait_until
from agnt_jobs.bench.child import ROOT, child_env, stop_all
from agnt_jobs.bench.report import Measurement, percentile, ratio

WORKERS = 3
CHANGES = 20
GOAL_P99_SECONDS = 1.0
START_TIMEOUT_SECONDS = 60.0
APPLY_TIMEOUT_SECONDS = 30.0
# A production schedule with no settings to wait for; its two crons alternate.
SCHEDULE = "prune_error_logs"
CRONS = ("31 5 * * *", "32 5 * * *")


def _applied_at(log: Path, cron: str, after: float) -> float | None:
    """When this worker's log says it follows ``cron`` for the schedule, at or
    after ``after`` (epoch seconds)."""
    for line in log.read_text(errors="replace").splitlines():
        if '"schedule_change_applied"' not in line:
            continue
        entry = json.loads(line)
        fields = entry.get("fields", {})
        if fields.get("schedule") != SCHEDULE or fields.get("cron") != cron:
            continue
        at = datetime.fromisoformat(entry["ts"]).timestamp()
        if at >= after:
            return at
    return None


def _following(paths: list[Path]) -> bool:
    """Every worker's deferrer has made its first pass."""
    return all(
        '"schedule_deferrer_following"' in path.read_text(errors="replace")
        for path in paths
    )


def ours(ctx: BenchContext, changes: int) -> list[float]:
    """Latencies (s) of every worker for every change."""
    name = ctx.server.migrated("schedule_change")
    url = ctx.server.url(name)
    env = child_env(url, AGNT_LOG_FORMAT="json", AGNT_LOG_LEVEL="INFO")
    directory = tempfile.TemporaryDirectory(prefix="agnt-bench-change-")
    paths = [Path(directory.name) / f"w{n}.log" for n in range(WORKERS)]
    processes = [
        subprocess.Popen(
            # Our CLI: its log lines are JSON (the stock one formats its own).
            [str(Path(sys.executable).parent / "agnt-jobs"), "worker"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=path.open("w"),
        )
        for path in paths
    ]
    latencies: list[float] = []
    try:
        _wait(lambda: _following(paths), START_TIMEOUT_SECONDS, "worker start")
        with psycopg.connect(url, autocommit=True) as connection:
            for change in range(changes):
                cron = CRONS[change % 2]
                before = time.time()
                connection.execute(
                    "UPDATE schedules SET cron = %s WHERE id = %s", [cron, SCHEDULE]
                )
                for path in paths:
                    applied = _wait(
                        lambda path=path, cron=cron, before=before: _applied_at(
                            path, cron, before
                        ),
                        APPLY_TIMEOUT_SECONDS,
                        "a worker following the change",
                    )
                    latencies.append(applied - before)
                time.sleep(0.2)
    except RuntimeError:
        for path in paths:
            ctx.say(f"{path.name}: " + " | ".join(path.read_text().splitlines()[-5:]))
        raise
    finally:
        stop_all(processes)
        ctx.server.wait_idle(name)
        ctx.server.drop(name)
        directory.cleanup()
    return latencies


def bare_notify(ctx: BenchContext, changes: int) -> list[float]:
    """Latencies (s) of a bare NOTIFY to ``WORKERS`` listening connections."""
    name = ctx.server.create("schedule_change_notify")
    url = ctx.server.url(name)
    latencies: list[float] = []
    lock = threading.Lock()
    stop = threading.Event()
    ready = threading.Barrier(WORKERS + 1)

    def listen() -> None:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("LISTEN bench_change")
            ready.wait()
            while not stop.is_set():
                for notify in connection.notifies(timeout=0.5, stop_after=1):
                    received = time.time()
                    with lock:
                        latencies.append(received - float(notify.payload))

    threads = [threading.Thread(target=listen) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    try:
        ready.wait()
        with psycopg.connect(url, autocommit=True) as connection:
            for change in range(changes):
                expected = (change + 1) * WORKERS
                connection.execute(
                    "SELECT pg_notify('bench_change', %s)", [str(time.time())]
                )
                _wait(
                    lambda expected=expected: len(latencies) >= expected,
                    10.0,
                    "a NOTIFY received",
                )
                time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        ctx.server.drop(name)
    return latencies


def run(ctx: BenchContext, changes: int = CHANGES) -> list[Measurement]:
    ctx.say(f"schedule_change: {WORKERS} workers, {changes} changes")
    measured = ours(ctx, changes)
    floor = bare_notify(ctx, changes)
    p99, floor_p99 = percentile(measured, 0.99), percentile(floor, 0.99)
    assert p99 is not None and floor_p99 is not None
    return [
        Measurement(
            family="schedule_change",
            name=f"UPDATE to every worker following it, p99, {WORKERS} workers",
            value=round(p99, 4),
            unit="s",
            baseline=round(floor_p99, 4),
            ratio=ratio(p99, floor_p99),
            goal=f"p99 <= {GOAL_P99_SECONDS:g} s",
            met=p99 <= GOAL_P99_SECONDS,
            note=(
                f"{changes} changes x {WORKERS} workers: p50 "
                f"{percentile(measured, 0.5) or 0:.4f} s, max {max(measured):.4f} s; "
                f"bare NOTIFY to {WORKERS} listeners p50 "
                f"{percentile(floor, 0.5) or 0:.4f} s, p99 {floor_p99:.4f} s"
            ),
            details={"ours": measured, "bare_notify": floor},
        )
    ]


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    return wait_until(predicate, timeout, f"schedule_change benchmark: {what}")
