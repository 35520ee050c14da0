"""Shutdown, part of the recovery family: a worker running one job gets SIGTERM,
with a grace of ``GRACE_SECONDS``. Three jobs that do not finish in the grace: a
checkpointed one (steps of 0.2 s), one blocked on a row lock another session
holds, one waiting on an HTTP peer that answers after two minutes (its client's
timeout 30 s). Measured: seconds from the signal to the process's exit, its exit
status, and, once a second worker has run the job to the end, whether any two
attempts of it overlapped. Then a worker killed with -9 under the default
settings: seconds from the kill to another worker starting the job again.

The baseline is stock Procrastinate's worker (``agnt_jobs.bench.apps.plain``)
with the same jobs and grace: its exit, or ``BASELINE_CAP_SECONDS`` past the grace
if it has not exited by then (it is killed). Stock Procrastinate has no rescue, so
the kill -9 figure's baseline is the stall timeout the rescue waits out, as set.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from agnt_jobs.bench.base import STOP_JOBS, BenchContext, wait_until
from agnt_jobs.bench.child import ROOT, child_env
from agnt_jobs.bench.report import Measurement, ratio
from agnt_jobs.settings import get_settings
from agnt_jobs.standins.server import LocalServer, Received, Reply

GRACE_SECONDS = 5.0
GOAL_EXIT_PAST_GRACE = 5.0
GOAL_RETRY_SECONDS = 60.0
BASELINE_CAP_SECONDS = 20.0
PEER_SECONDS = 120.0
PEER_TIMEOUT_SECONDS = 30.0
START_TIMEOUT_SECONDS = 60.0
# A job's ``job_runs`` attempts, in order, for the overlap check.
RUNS = """
SELECT attempt, status, extract(epoch FROM started_at) AS started,
       extract(epoch FROM finished_at) AS finished
FROM job_runs WHERE task_name = %(task)s ORDER BY attempt
"""
STATUS = "SELECT status::text FROM procrastinate_jobs WHERE task_name = %(task)s"


def _slow_peer(request: Received) -> Reply:
    """Answers ``/slow`` after ``PEER_SECONDS``, anything else at once."""
    if request.path == "/slow":
        time.sleep(PEER_SECONDS)
    return Reply(200)


def _one(url: str, sql: str, **params: Any) -> Any:
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(sql, params).fetchone()
    return None if row is None else row[0]


def _procrastinate(app: str, *args: str) -> list[str]:
    binary = str(Path(sys.executable).parent / "procrastinate")
    return [binary, f"--app=agnt_jobs.bench.apps.{app}", *args]


def _defer(app: str, task: str, env: dict[str, str]) -> None:
    subprocess.run(
        _procrastinate(app, "defer", task),
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def _worker(app: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _procrastinate(app, "worker"),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )


def _overlaps(url: str, task: str) -> int:
    """Pairs of consecutive attempts of ``task``'s job that overlapped."""
    with psycopg.connect(url, autocommit=True) as connection:
        runs = connection.execute(RUNS, {"task": task}).fetchall()
    return sum(
        1
        for before, after in itertools.pairwise(runs)
        if before[3] is None or before[3] > after[2]
    )


def stop_one(
    ctx: BenchContext, app: str, task: str, logs: Path, peer: str
) -> dict[str, Any]:
    """SIGTERM a worker of ``app`` running ``task``; with ours, a second worker
    then runs the job to its end."""
    name = ctx.server.migrated(f"shutdown_{app}_{task}")
    url = ctx.server.url(name)
    env = child_env(
        url,
        AGNT_LOG_LEVEL="INFO",
        AGNT_SHUTDOWN_GRACEFUL_TIMEOUT=str(GRACE_SECONDS),
        AGNT_BENCH_PEER_URL=f"{peer}/slow",
        AGNT_BENCH_PEER_TIMEOUT=str(PEER_TIMEOUT_SECONDS),
    )
    holder = psycopg.connect(url)
    try:
        holder.execute("CREATE TABLE bench_locked (id int PRIMARY KEY, n int)")
        holder.execute("INSERT INTO bench_locked VALUES (1, 0)")
        holder.commit()
        holder.execute("SELECT * FROM bench_locked WHERE id = 1 FOR UPDATE")
        _defer(app, task, env)
        first = _worker(app, env, logs / f"{app}-{task}-first.log")
        _wait(
            lambda: _one(url, STATUS, task=task) == "doing",
            START_TIMEOUT_SECONDS,
            f"{task} started",
        )
        time.sleep(1.0)  # well inside the body: the lock waited on, the peer called
        signalled = time.monotonic()
        first.send_signal(signal.SIGTERM)
        cap = GRACE_SECONDS + BASELINE_CAP_SECONDS
        try:
            status: int | None = first.wait(timeout=cap)
            exit_s = time.monotonic() - signalled
        except subprocess.TimeoutExpired:
            first.kill()
            first.wait()
            status, exit_s = None, cap
        figures: dict[str, Any] = {
            "exit_s": round(exit_s, 3),
            "exit_status": status,
            "capped": status is None,
        }
        holder.rollback()
        if app == "ours":
            quick = {**env, "AGNT_BENCH_STEPS_SECONDS": "0.2"}
            quick["AGNT_BENCH_PEER_URL"] = f"{peer}/fast"
            second = _worker(app, quick, logs / f"{app}-{task}-second.log")
            try:
                _wait(
                    lambda: _one(url, STATUS, task=task) == "succeeded",
                    START_TIMEOUT_SECONDS,
                    f"{task} done by another worker",
                )
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(timeout=60)
            figures["overlapping_attempts"] = _overlaps(url, task)
            figures["attempts"] = _one(
                url, "SELECT count(*) FROM job_runs WHERE task_name = %(t)s", t=task
            )
    finally:
        holder.close()
        ctx.server.wait_idle(name)
        ctx.server.drop(name)
    return figures


def killed(ctx: BenchContext, logs: Path) -> dict[str, Any]:
    """kill -9 a worker of ours running a long checkpointed job, another worker
    beside it, default settings: seconds from the kill to the job started again."""
    name = ctx.server.migrated("shutdown_kill")
    url = ctx.server.url(name)
    env = child_env(url, AGNT_LOG_LEVEL="INFO")
    task = STOP_JOBS[0]
    try:
        _defer("ours", task, env)
        first = _worker("ours", env, logs / "killed.log")
        _wait(
            lambda: _one(url, STATUS, task=task) == "doing",
            START_TIMEOUT_SECONDS,
            "the job started",
        )
        quick = {**env, "AGNT_BENCH_STEPS_SECONDS": "0.2"}
        second = _worker("ours", quick, logs / "survivor.log")
        try:
            time.sleep(2.0)
            first.kill()
            first.wait()
            killed_at = _one(url, "SELECT extract(epoch FROM now())")
            _wait(
                lambda: _one(url, STATUS, task=task) == "succeeded",
                GOAL_RETRY_SECONDS * 3,
                "the job retried",
            )
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=60)
        retried_at = _one(
            url,
            "SELECT extract(epoch FROM started_at) FROM job_runs "
            "WHERE task_name = %(t)s AND attempt = 2",
            t=task,
        )
        return {
            "retry_s": round(float(retried_at) - float(killed_at), 3),
            "overlapping_attempts": _overlaps(url, task),
        }
    finally:
        ctx.server.wait_idle(name)
        ctx.server.drop(name)


def run(ctx: BenchContext, logs: Path) -> list[Measurement]:
    measurements = []
    with LocalServer(_slow_peer) as server:
        peer = server.url
        for task in STOP_JOBS:
            ctx.say(f"recovery: SIGTERM past a {GRACE_SECONDS:g} s grace, {task}")
            ours = stop_one(ctx, "ours", task, logs, peer)
            plain = stop_one(ctx, "plain", task, logs, peer)
            past = ours["exit_s"] - GRACE_SECONDS
            baseline = ("> " if plain["capped"] else "") + f"{plain['exit_s']:g}"
            measurements.append(
                Measurement(
                    family="recovery",
                    name=f"SIGTERM to exit, {task}, grace {GRACE_SECONDS:g} s",
                    value=ours["exit_s"],
                    unit="s",
                    baseline=plain["exit_s"],
                    ratio=ratio(ours["exit_s"], plain["exit_s"]),
                    goal=f"<= grace + {GOAL_EXIT_PAST_GRACE:g} s, exit 0, "
                    "0 overlapping attempts",
                    met=(
                        past <= GOAL_EXIT_PAST_GRACE
                        and ours["exit_status"] == 0
                        and ours["overlapping_attempts"] == 0
                    ),
                    note=(
                        f"ours exits {past:.2f} s past the grace, status "
                        f"{ours['exit_status']}, {ours['attempts']} attempts, "
                        f"{ours['overlapping_attempts']} overlapping; stock "
                        f"Procrastinate: {baseline} s, status {plain['exit_status']}"
                        + (" (killed)" if plain["capped"] else "")
                    ),
                    details={"ours": ours, "plain": plain},
                )
            )
    stall = get_settings().stalled_worker_seconds
    ctx.say("recovery: kill -9, default settings")
    death = killed(ctx, logs)
    measurements.append(
        Measurement(
            family="recovery",
            name="kill -9 to the job retried, default settings",
            value=death["retry_s"],
            unit="s",
            baseline=stall,
            ratio=ratio(death["retry_s"], stall),
            goal=f"<= {GOAL_RETRY_SECONDS:g} s, 0 overlapping attempts",
            met=(
                death["retry_s"] <= GOAL_RETRY_SECONDS
                and death["overlapping_attempts"] == 0
            ),
            note=(
                f"baseline: the stall timeout the rescue waits out "
                f"(AGNT_STALLED_WORKER_SECONDS {stall:g}); stock Procrastinate "
                "never retries it (no rescue)"
            ),
            details=death,
        )
    )
    return measurements


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    return wait_until(predicate, timeout, f"shutdown benchmark: {what}")
