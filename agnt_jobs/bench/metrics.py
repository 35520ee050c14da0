"""The cost of a Prometheus scrape: ``GET /metrics`` of an ``agnt-jobs admin``
process, over HTTP with the token, on the jobs benchmark's data set (at scale 100:
a million bookings) plus thirty days of run history for every declared schedule
(each tick of its cron a finished run, a few per cent failed or timed out), a
week of finished jobs in Procrastinate's table, and jobs waiting on every queue.

The baseline, measured in the same run on the same database, is what the run
counters would cost without the counter tables: the same per-job, per-status
counts and duration sums computed from the thirty days of ``job_runs``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from agnt_jobs.bench import fixtures
from agnt_jobs.bench.base import BenchContext
from agnt_jobs.bench.child import ROOT, child_env, stop_all
from agnt_jobs.bench.report import Measurement, percentile, ratio

GOAL_P99_MS = 100.0
SCRAPES = 50
WARMUP = 5
HISTORY_DAYS = 30
WAITING_PER_QUEUE = 50
START_TIMEOUT_SECONDS = 60.0

# Every finished run of the history: one per tick, with a status and a duration
# spread deterministically over the runs (3 % failed, 1 % timed out).
HISTORY = """
INSERT INTO job_runs (job_id, attempt, task_name, queue_name, worker_name,
                      worker_id, started_at, status)
SELECT 100000000 + n, 1, task, queue, 'bench-worker', NULL, tick, 'running'
FROM unnest(%(tasks)s::text[], %(queues)s::text[], %(ticks)s::timestamptz[])
     WITH ORDINALITY AS t(task, queue, tick, n)
"""
# Ending them as the worker does fires the counters' trigger for each.
END_HISTORY = """
UPDATE job_runs
SET status = CASE WHEN job_id % 100 < 3 THEN 'failed'
                  WHEN job_id % 100 = 3 THEN 'timed_out' ELSE 'succeeded' END,
    finished_at = started_at + (0.02 + (job_id % 97) * 0.031) * interval '1 second'
WHERE job_id >= 100000000 AND status = 'running'
"""
# A week of finished jobs, as the job retention keeps them, and jobs waiting now.
FINISHED_JOBS = """
INSERT INTO procrastinate_jobs (queue_name, task_name, status, args, attempts)
SELECT queue, task, 'succeeded', '{}', 1
FROM unnest(%(tasks)s::text[], %(queues)s::text[], %(ticks)s::timestamptz[])
     AS t(task, queue, tick)
WHERE tick > now() - interval '7 days'
"""
WAITING_JOBS = """
INSERT INTO procrastinate_jobs (queue_name, task_name, status, args)
SELECT queue, 'bench_waiting', 'todo', '{}'
FROM unnest(%(queues)s::text[]) AS queue, generate_series(1, %(per_queue)s)
"""
# What the counters replace: the same figures from the history itself.
FROM_HISTORY = """
SELECT task_name, status, count(*) AS runs,
       sum(extract(epoch FROM finished_at - started_at)) AS seconds,
       max(finished_at) AS last_finished_at
FROM job_runs WHERE status <> 'running'
GROUP BY task_name, status
"""


def _history(ctx: BenchContext, days: int) -> dict[str, list[Any]]:
    """Each tick of every declared schedule in the last ``days`` days."""
    from periodic import DECLARED

    tasks: list[str] = []
    queues: list[str] = []
    ticks: list[Any] = []
    start = ctx.at - timedelta(days=days)
    for schedule in DECLARED:
        tick = schedule.next_after(start)
        while tick < ctx.at:
            tasks.append(schedule.id)
            queues.append(schedule.queue)
            ticks.append(tick)
            tick = schedule.next_after(tick)
    return {"tasks": tasks, "queues": queues, "ticks": ticks}


async def _declare(url: str) -> None:
    """The schedules table as a worker of this code leaves it at start."""
    from procrastinate import PsycopgConnector

    from agnt_jobs.scheduler import deploy
    from agnt_jobs.scheduler.worker import AgntApp
    from periodic import DECLARED

    app = AgntApp(connector=PsycopgConnector(conninfo=url))
    deploy.register(app, DECLARED)
    # Declared without their bodies (no job runs here): the deploy's warning
    # about that says nothing about the code.
    quiet = logging.getLogger(deploy.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        async with app.open_async():
            await deploy.sync_table(app)
    finally:
        quiet.setLevel(level)


def build(ctx: BenchContext, days: int) -> tuple[str, dict[str, Any]]:
    """The data set; its database name and its sizes."""
    name = ctx.server.migrated("metrics")
    url = ctx.server.url(name)
    sizes = fixtures.Sizes(ctx.scale, due=100)
    ctx.say(f"metrics: {sizes.bookings:,} bookings and their tables")
    fixtures.fill(url, sizes, ctx.at, "http://127.0.0.1:9")
    asyncio.run(_declare(url))
    history = _history(ctx, days)
    ctx.say(f"metrics: {len(history['ticks']):,} runs of {days} days")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SET synchronous_commit = off")
        connection.execute(HISTORY, history)
        connection.execute(END_HISTORY)
        connection.execute(FINISHED_JOBS, history)
        queues = sorted(set(history["queues"]))
        connection.execute(
            WAITING_JOBS, {"queues": queues, "per_queue": WAITING_PER_QUEUE}
        )
        connection.execute("VACUUM ANALYZE")
        counts = {}
        for table in ("bookings", "job_runs", "procrastinate_jobs", "send_queue"):
            row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row is not None
            counts[table] = int(row[0])
    return name, counts


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrapes(url: str, count: int) -> tuple[list[float], int, int]:
    """Seconds of each of ``count`` scrapes of an ``agnt-jobs admin`` on ``url``,
    with the size of the answer and its number of samples."""
    token = secrets.token_urlsafe(32)
    port = _free_port()
    env = child_env(url, INTERNAL_API_TOKEN=token)
    admin = subprocess.Popen(
        [str(Path(sys.executable).parent / "agnt-jobs"), "admin", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    endpoint = f"http://127.0.0.1:{port}/metrics"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(headers=headers, timeout=30.0) as client:
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while True:
                try:
                    client.get(endpoint).raise_for_status()
                    break
                except httpx.TransportError:
                    if admin.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            "metrics benchmark: the admin server did not start"
                        ) from None
                    time.sleep(0.1)
            for _ in range(WARMUP):
                client.get(endpoint).raise_for_status()
            seconds: list[float] = []
            body = b""
            for _ in range(count):
                started = time.perf_counter()
                response = client.get(endpoint)
                seconds.append(time.perf_counter() - started)
                response.raise_for_status()
                body = response.content
    finally:
        stop_all([admin])
    samples = sum(
        1 for line in body.decode().splitlines() if line and not line.startswith("#")
    )
    return seconds, len(body), samples


def from_history(url: str, count: int) -> list[float]:
    """Seconds of each of ``count`` computations of the counters from the history."""
    seconds: list[float] = []
    with psycopg.connect(url, autocommit=True) as connection:
        for _ in range(WARMUP):
            connection.execute(FROM_HISTORY).fetchall()
        for _ in range(count):
            started = time.perf_counter()
            connection.execute(FROM_HISTORY).fetchall()
            seconds.append(time.perf_counter() - started)
    return seconds


def run(
    ctx: BenchContext, count: int = SCRAPES, days: int = HISTORY_DAYS
) -> list[Measurement]:
    name, counts = build(ctx, days)
    url = ctx.server.url(name)
    try:
        ctx.say(f"metrics: {count} scrapes over HTTP")
        ours, size, samples = scrapes(url, count)
        baseline = from_history(url, count)
    finally:
        ctx.server.wait_idle(name)
        ctx.server.drop(name)
    p50, p99 = percentile(ours, 0.5), percentile(ours, 0.99)
    base50, base99 = percentile(baseline, 0.5), percentile(baseline, 0.99)
    assert p50 is not None and p99 is not None
    assert base50 is not None and base99 is not None
    return [
        Measurement(
            family="metrics",
            name="GET /metrics over HTTP, p99",
            value=round(p99 * 1000, 2),
            unit="ms",
            baseline=round(base99 * 1000, 2),
            ratio=ratio(p99, base99),
            goal=f"p99 < {GOAL_P99_MS:g} ms",
            met=p99 * 1000 < GOAL_P99_MS,
            note=(
                f"{count} scrapes: p50 {p50 * 1000:.2f} ms, {samples} samples, "
                f"{size:,} bytes; baseline: the run counters computed from "
                f"{counts['job_runs']:,} runs of history, p50 {base50 * 1000:.2f} ms "
                f"({counts['bookings']:,} bookings, "
                f"{counts['procrastinate_jobs']:,} jobs)"
            ),
            details={"ours": ours, "from_history": baseline, "rows": counts},
        )
    ]
