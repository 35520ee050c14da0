"""Scheduling precision: real ``procrastinate worker`` processes, as an operator
runs them, defer a one-second schedule (``bench_tick``, beside every production
schedule) for a while; then the database tells, for each tick, how many jobs were
deferred for it and how long after the tick its job started.

The baseline is stock Procrastinate's own periodic deferrer running the same task
on the same number of workers (``agnt_jobs.bench.apps.plain``).

Beside it, the cost of one next-fire computation, which every deferrer pass makes
for every schedule: our evaluator (``agnt_jobs.scheduler.cron``) against croniter,
Procrastinate's, on the declared crons from the same instants.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from agnt_jobs.bench.base import TICK, BenchContext
from agnt_jobs.bench.child import ROOT, child_env, stop_all
from agnt_jobs.bench.report import Measurement, percentile, ratio
from agnt_jobs.scheduler.cron import parse

GOAL_P99_SECONDS = 1.0
# The last ticks of a run may not have started when the workers are stopped.
SETTLE_SECONDS = 2.0
START_TIMEOUT_SECONDS = 60.0

# One row per tick of the watched window: how many jobs were deferred for it, and
# the delay from the tick to the first start of any of them.
TICK_FIGURES = """
WITH ticks AS (
    SELECT generate_series(%(first)s::bigint, %(last)s::bigint) AS tick
), jobs AS (
    SELECT (j.args ->> 'timestamp')::bigint AS tick, j.id
    FROM procrastinate_jobs j
    WHERE j.task_name = %(task)s
), starts AS (
    SELECT e.job_id, min(e.at) AS started_at
    FROM procrastinate_events e
    WHERE e.type = 'started' AND e.job_id IN (SELECT id FROM jobs)
    GROUP BY e.job_id
)
SELECT t.tick, count(j.id) AS deferred,
       extract(epoch FROM min(s.started_at) - to_timestamp(t.tick)) AS delay
FROM ticks t
LEFT JOIN jobs j ON j.tick = t.tick
LEFT JOIN starts s ON s.job_id = j.id
GROUP BY t.tick
ORDER BY t.tick
"""


def _procrastinate() -> str:
    return str(Path(sys.executable).parent / "procrastinate")


def _wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError("the benchmark workers did not start deferring in time")


def _db_epoch(url: str) -> float:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT extract(epoch FROM now())").fetchone()
    assert row is not None
    return float(row[0])


def _ticks_deferred(url: str) -> bool:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = %s", [TICK]
        ).fetchone()
    return bool(row and row[0])


def watch(ctx: BenchContext, app: str, workers: int) -> dict[str, Any]:
    """Run ``workers`` worker processes of ``app`` on a fresh database for
    ``ctx.schedule_seconds`` and return the tick figures."""
    name = ctx.server.migrated(f"sched_{app}_{workers}")
    url = ctx.server.url(name)
    env = child_env(url, AGNT_BENCH_TICK="1")
    processes = [
        subprocess.Popen(
            [
                _procrastinate(),
                f"--app=agnt_jobs.bench.apps.{app}",
                "worker",
                f"--name=bench{number}",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for number in range(workers)
    ]
    try:
        _wait_for(lambda: _ticks_deferred(url), START_TIMEOUT_SECONDS)
        # Watch whole ticks after every worker is up and deferring.
        first = int(_db_epoch(url)) + 2
        time.sleep(ctx.schedule_seconds + 2)
        last = int(_db_epoch(url) - SETTLE_SECONDS)
        time.sleep(SETTLE_SECONDS)
    finally:
        stop_all(processes)
    try:
        with psycopg.connect(url) as connection:
            rows = connection.execute(
                TICK_FIGURES, {"first": first, "last": last, "task": TICK}
            ).fetchall()
    finally:
        ctx.server.wait_idle(name)
        ctx.server.drop(name)
    delays = [float(row[2]) for row in rows if row[2] is not None]
    return {
        "ticks": len(rows),
        "duplicates": sum(1 for row in rows if row[1] > 1),
        "misses": sum(1 for row in rows if row[1] == 0),
        "not_started": sum(1 for row in rows if row[1] and row[2] is None),
        "p50": percentile(delays, 0.5),
        "p99": percentile(delays, 0.99),
        "max": max(delays) if delays else None,
    }


def _rounded(figures: dict[str, Any]) -> dict[str, Any]:
    return {
        key: round(value, 3) if isinstance(value, float) else value
        for key, value in figures.items()
    }


def run(
    ctx: BenchContext, worker_counts: tuple[int, ...] = (1, 3)
) -> list[Measurement]:
    measurements = [evaluator_cost(ctx)]
    for workers in worker_counts:
        figures = {}
        for app in ("plain", "ours"):
            ctx.say(f"scheduling: {workers} {app} worker(s), {ctx.schedule_seconds}s")
            figures[app] = _rounded(watch(ctx, app, workers))
        ours, plain = figures["ours"], figures["plain"]
        met = (
            ours["p99"] is not None
            and ours["p99"] < GOAL_P99_SECONDS
            and ours["duplicates"] == 0
            and ours["misses"] == 0
        )
        measurements.append(
            Measurement(
                family="scheduling",
                name=f"tick to start p99, {workers} worker{'s' * (workers > 1)}",
                value=ours["p99"],
                unit="s",
                baseline=plain["p99"],
                ratio=ratio(ours["p99"], plain["p99"]),
                goal="p99 < 1 s, 0 dup, 0 miss",
                met=met,
                note=(
                    f"{workers} worker(s), {ours['ticks']} ticks: ours p50 "
                    f"{ours['p50']} s, max {ours['max']} s, {ours['duplicates']} "
                    f"duplicated, {ours['misses']} missed; plain p50 {plain['p50']} "
                    f"s, max {plain['max']} s, {plain['duplicates']} duplicated, "
                    f"{plain['misses']} missed"
                ),
                details={"ours": ours, "plain": plain},
            )
        )
    return measurements


# Instants of the evaluator benchmark: spread over a year with two DST transitions
# (the New York schedules cross them).
EVALUATOR_INSTANTS = 300
EVALUATOR_ZONES = ("Asia/Makassar", "America/New_York")


def evaluator_cost(ctx: BenchContext) -> Measurement:
    """Microseconds per next fire: ours (the expression read once, as a followed
    schedule keeps it) against croniter built from the instant, as the deferrer
    used it, for every declared cron in WITA and in New York."""
    from croniter import croniter

    from periodic import DECLARED

    rng = random.Random(2027)
    start = datetime(2027, 1, 1, tzinfo=UTC)
    instants = [
        start + timedelta(seconds=rng.uniform(0, 365 * 86400))
        for _ in range(EVALUATOR_INSTANTS)
    ]
    crons = sorted({schedule.cron for schedule in DECLARED})
    ctx.say(f"scheduling: next fire of {len(crons)} crons, ours and croniter")
    cases = [
        (cron, ZoneInfo(zone), instant)
        for cron in crons
        for zone in EVALUATOR_ZONES
        for instant in instants
    ]
    parsed = {cron: parse(cron) for cron in crons}
    began = time.perf_counter()
    for cron, zone, instant in cases:
        parsed[cron].next_after(instant, zone)
    ours = (time.perf_counter() - began) / len(cases) * 1e6
    began = time.perf_counter()
    for cron, zone, instant in cases:
        croniter(cron, instant.astimezone(zone)).get_next(datetime)
    theirs = (time.perf_counter() - began) / len(cases) * 1e6
    return Measurement(
        family="scheduling",
        name="next fire time, our evaluator",
        value=round(ours, 1),
        unit="us",
        baseline=round(theirs, 1),
        ratio=ratio(ours, theirs),
        goal="cheaper than croniter",
        met=ours < theirs,
        note=(
            f"{len(cases)} computations: {len(crons)} declared crons x "
            f"{len(EVALUATOR_ZONES)} zones x {EVALUATOR_INSTANTS} instants of 2027"
        ),
    )
