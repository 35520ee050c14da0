"""Recovery: three ``procrastinate worker`` processes on a private PostgreSQL cluster
that is stopped for a while and started again. Measured: seconds from the database
accepting connections again to the first tick decided and to the first job started,
the workers still alive, and the log lines each wrote while the database was away.

The baseline is stock Procrastinate (``agnt_jobs.bench.apps.plain``) under the same
outage: its workers' fate, and, since an operator must then start them again by
hand, how long fresh workers take from the database's return to their first job.

The family also stops workers: SIGTERM past the grace and kill -9
(``agnt_jobs.bench.shutdown``).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from agnt_jobs.bench import shutdown
from agnt_jobs.bench.base import BenchContext, wait_until
from agnt_jobs.bench.child import ROOT, child_env, stop_all
from agnt_jobs.bench.cluster import ClusterUnavailable, PgCluster
from agnt_jobs.bench.report import Measurement, ratio
from agnt_jobs.db import migrate

WORKERS = 3
OUTAGE_SECONDS = 60.0
GOAL_SECONDS = 5.0
GOAL_LINES = 10
START_TIMEOUT_SECONDS = 60.0

# The first tick our deferrer decided, and the first job any worker started, at or
# after an instant (epoch seconds).
FIRST_AFTER = """
SELECT
  (SELECT extract(epoch FROM min(decided_at)) FROM schedule_ticks
    WHERE decided_at >= to_timestamp(%(after)s)) AS decided,
  (SELECT extract(epoch FROM min(at)) FROM procrastinate_events
    WHERE type = 'started' AND at >= to_timestamp(%(after)s)) AS started
"""


REGISTERED = "SELECT count(*) FROM procrastinate_workers"


def _query(url: str, sql: str, **params: Any) -> tuple[Any, ...]:
    with psycopg.connect(url, connect_timeout=2) as connection:
        row = connection.execute(sql, params).fetchone()
    assert row is not None
    return tuple(row)


def _started_since(url: str, after: float) -> float | None:
    try:
        started: float | None = _query(url, FIRST_AFTER, after=after)[1]
        return started
    except psycopg.OperationalError:
        return None


class Workers:
    """``count`` worker processes of one App, each logging to its own file."""

    def __init__(self, app: str, url: str, logs: Path, count: int = WORKERS) -> None:
        env = child_env(url, AGNT_BENCH_TICK="1", AGNT_LOG_LEVEL="INFO")
        self.logs = [logs / f"{app}-{n}.log" for n in range(count)]
        self.processes = [
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "procrastinate"),
                    f"--app=agnt_jobs.bench.apps.{app}",
                    "worker",
                ],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=path.open("w"),
            )
            for path in self.logs
        ]

    def lines(self) -> list[int]:
        return [len(path.read_text().splitlines()) for path in self.logs]

    def last_lines(self, count: int = 3) -> list[list[str]]:
        """The end of the log of each worker that exited."""
        return [
            path.read_text().splitlines()[-count:]
            for path, process in zip(self.logs, self.processes, strict=True)
            if process.poll() is not None
        ]

    def alive(self) -> int:
        return sum(process.poll() is None for process in self.processes)

    def exit_codes(self) -> list[int | None]:
        return [process.poll() for process in self.processes]

    def stop(self) -> None:
        stop_all(self.processes)


def outage(ctx: BenchContext, app: str, seconds: float) -> dict[str, Any]:
    """Stop the database under ``WORKERS`` workers of ``app`` for ``seconds``."""
    cluster = PgCluster.temporary()
    try:
        cluster.start()
        url = cluster.create_database("agnt")
        migrate.upgrade(url, "head")
        workers = Workers(app, url, cluster.root)
        try:
            _wait(lambda: _started_since(url, 0), START_TIMEOUT_SECONDS, "a first job")
            _wait(
                lambda: _query(url, REGISTERED)[0] >= WORKERS,
                START_TIMEOUT_SECONDS,
                "every worker's start",
            )
            ctx.say(f"recovery: {app}, database stopped for {seconds:.0f} s")
            cluster.stop()
            lines_before = workers.lines()
            time.sleep(seconds)
            lines_during = [
                after - before
                for before, after in zip(lines_before, workers.lines(), strict=True)
            ]
            cluster.start()
            back = time.time()
            alive = workers.alive()
            figures: dict[str, Any] = {
                "alive_after": alive,
                "exit_codes": workers.exit_codes(),
                "lines_during_outage": lines_during,
                "last_words_of_the_dead": workers.last_lines(),
            }
            if alive == 0:
                # What an operator had to do: start the workers again.
                workers.stop()
                again = cluster.root / "restarted"
                again.mkdir()
                workers = Workers(app, url, again)
                figures["restarted_by_hand"] = True
            started = _wait(
                lambda: _started_since(url, back), START_TIMEOUT_SECONDS, "a job"
            )
            decided = _query(url, FIRST_AFTER, after=back)[0] if app == "ours" else None
            figures["first_job_started_s"] = round(float(started) - back, 3)
            figures["first_tick_decided_s"] = (
                None if decided is None else round(float(decided) - back, 3)
            )
        finally:
            workers.stop()
    finally:
        cluster.cleanup()
    return figures


def run(ctx: BenchContext, seconds: float = OUTAGE_SECONDS) -> list[Measurement]:
    measurements = database_outage(ctx, seconds)
    with tempfile.TemporaryDirectory(prefix="agnt-bench-shutdown-") as logs:
        measurements += shutdown.run(ctx, Path(logs))
    return measurements


def database_outage(ctx: BenchContext, seconds: float) -> list[Measurement]:
    try:
        ours = outage(ctx, "ours", seconds)
        plain = outage(ctx, "plain", seconds)
    except ClusterUnavailable as reason:
        ctx.say(f"recovery: database outage skipped ({reason})")
        return []
    most_lines = max(ours["lines_during_outage"])
    note = (
        f"{WORKERS} workers, database stopped {seconds:.0f} s. Ours: "
        f"{ours['alive_after']}/{WORKERS} alive, first tick decided "
        f"{ours['first_tick_decided_s']} s after the database was back, at most "
        f"{most_lines} log lines per worker during the outage. Plain: "
        f"{plain['alive_after']}/{WORKERS} alive (exit codes {plain['exit_codes']})"
        + (", started again by hand" if plain.get("restarted_by_hand") else "")
    )
    return [
        Measurement(
            family="recovery",
            name=f"database back to first job started, {WORKERS} workers",
            value=ours["first_job_started_s"],
            unit="s",
            baseline=plain["first_job_started_s"],
            ratio=ratio(ours["first_job_started_s"], plain["first_job_started_s"]),
            goal=f"<= {GOAL_SECONDS:g} s, all alive, <= {GOAL_LINES} lines/worker",
            met=(
                ours["first_job_started_s"] <= GOAL_SECONDS
                and ours["alive_after"] == WORKERS
                and most_lines <= GOAL_LINES
            ),
            note=note,
            details={"ours": ours, "plain": plain},
        )
    ]


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    return wait_until(predicate, timeout, f"recovery benchmark: {what}", poll=0.1)
