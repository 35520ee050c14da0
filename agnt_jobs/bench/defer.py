"""Deferring in the caller's transaction: what ``agnt_defer`` adds to a backend's
transaction (BEGIN, the caller's INSERT, the defer, COMMIT), one client, one
transaction at a time, each timed.

The baseline, in the same run on the same database: the same transaction with a
plain INSERT into a table of ``procrastinate_jobs``' shape (its columns, defaults
and indexes, the queueing lock's unique index among them, no triggers) in place of
the defer, and the server's round trip (``SELECT 1``). Deferring is one statement,
as the INSERT is; the goal is that its median costs at most one round trip more.
Two cases: a new job each time (its own queueing lock per transaction, as a caller
deferring per booking does), and a job already waiting with the job's queueing lock,
which the caller joins (the unique index refuses the insert; the waiting job is
locked FOR SHARE instead).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg

from agnt_jobs.bench.base import BenchContext
from agnt_jobs.bench.report import Measurement, percentile, ratio
from agnt_jobs.scheduler import defer

TRANSACTIONS = 2000
JOB = "booking_reminders"
CALLER = "INSERT INTO error_log (source, message) VALUES ('bench', 'booking')"
SAME_SHAPE = (
    "CREATE TABLE bench_jobs (LIKE procrastinate_jobs INCLUDING DEFAULTS "
    "INCLUDING INDEXES INCLUDING CONSTRAINTS)"
)
PLAIN_INSERT = (
    "INSERT INTO {table} (queue_name, task_name, lock, queueing_lock, args) "
    "VALUES ('default', %(job)s, %(job_lock)s, %(lock)s, '{{}}')"
)


def _declare(connection: psycopg.Connection[Any]) -> None:
    """The jobs as a worker of this code declares them at start."""
    from agnt_jobs.app import app

    connection.execute(
        defer.SQL["declare_jobs"],
        {"jobs": json.dumps(defer.job_declarations(app))},
    )


def _timed(
    connection: psycopg.Connection[Any],
    i: int,
    statement: Callable[[int], tuple[str, dict[str, Any]] | None],
) -> list[float]:
    """Seconds of one transaction: BEGIN, the caller's INSERT, ``statement(i)``
    (None: nothing more), COMMIT."""
    started = time.perf_counter()
    with connection.transaction():
        connection.execute(CALLER)
        step = statement(i)
        if step is not None:
            connection.execute(*step)
    return [time.perf_counter() - started]


def _round_trips(connection: psycopg.Connection[Any], count: int) -> list[float]:
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        connection.execute("SELECT 1").fetchone()
        seconds.append(time.perf_counter() - started)
    return seconds


def _defer_call(lock: Callable[[int], str | None]) -> Callable[[int], Any]:
    def step(i: int) -> tuple[str, dict[str, Any]]:
        return defer.SQL["defer"], {
            "job": JOB,
            "args": "{}",
            "at": None,
            "queueing_lock": lock(i),
            "traceparent": None,
        }

    return step


def _plain(table: str, lock: Callable[[int], str | None]) -> Callable[[int], Any]:
    statement = PLAIN_INSERT.format(table=table)

    def step(i: int) -> tuple[str, dict[str, Any]]:
        return statement, {"job": JOB, "job_lock": JOB, "lock": lock(i)}

    return step


def measure(url: str, count: int, repeats: int) -> dict[str, list[float]]:
    """Per-transaction seconds of each case. The cases take turns, one transaction
    each, so that the machine's load falls on all of them alike; commits do not
    wait for the WAL flush, which every case pays alike and whose milliseconds of
    jitter would hide the tens of microseconds measured here."""
    cases: dict[str, Callable[[int], Any]] = {
        "no_job": lambda i: None,
        "plain_insert": _plain("bench_jobs", lambda i: f"b{i}"),
        "job_table_insert": _plain("procrastinate_jobs", lambda i: f"t{i}"),
        "defer_new": _defer_call(lambda i: f"b{i}"),
        "defer_join": _defer_call(lambda i: None),
    }
    runs: dict[str, list[float]] = {case: [] for case in (*cases, "round_trip")}
    with psycopg.connect(url, autocommit=True) as connection:
        _declare(connection)
        connection.execute(SAME_SHAPE)
        connection.execute("SET synchronous_commit = off")
        # The job a joining caller finds waiting (the job's own queueing lock).
        connection.execute(*_defer_call(lambda i: None)(0))
        for i in range(count * repeats):
            runs["round_trip"] += _round_trips(connection, 1)
            for case, step in cases.items():
                runs[case] += _timed(connection, i, step)
    return runs


def _triggers(median: dict[str, float], case: str, baseline: str) -> str:
    """The part of a new job's difference that Procrastinate's own triggers on
    the job table take (its deferred event row, its NOTIFY at commit)."""
    if (case, baseline) != ("defer_new", "plain_insert"):
        return ""
    share = median["job_table_insert"] - median["plain_insert"]
    return f" (of which the job table's triggers {share * 1e6:+.1f} us)"


def run(ctx: BenchContext, count: int = TRANSACTIONS) -> list[Measurement]:
    name = ctx.server.migrated("defer")
    ctx.say(f"defer: {count * ctx.repeats} transactions of each case")
    try:
        runs = measure(ctx.server.url(name), count, ctx.repeats)
    finally:
        ctx.server.drop(name)
    median = {case: statistics.median(values) for case, values in runs.items()}
    round_trip = median["round_trip"]
    measurements = []
    for case, label, baseline, baseline_label in (
        ("defer_new", "a new job", "plain_insert", "the same-shape table"),
        (
            "defer_new",
            "a new job, against the job table",
            "job_table_insert",
            "procrastinate_jobs itself",
        ),
        (
            "defer_join",
            "joining the job already waiting",
            "plain_insert",
            "the same-shape table",
        ),
    ):
        extra = median[case] - median[baseline]
        measurements.append(
            Measurement(
                family="defer",
                name=f"transaction with agnt_defer, {label}, median",
                value=round(median[case] * 1e6, 1),
                unit="us",
                baseline=round(median[baseline] * 1e6, 1),
                ratio=ratio(median[case], median[baseline]),
                goal="at most one round trip more than the plain INSERT",
                met=extra <= round_trip,
                note=(
                    f"{extra * 1e6:+.1f} us over a plain INSERT into "
                    f"{baseline_label}{_triggers(median, case, baseline)}; one round "
                    f"trip {round_trip * 1e6:.1f} us; "
                    f"the transaction with no job {median['no_job'] * 1e6:.1f} us; "
                    f"p99 {(percentile(runs[case], 0.99) or 0) * 1e6:.1f} us vs "
                    f"{(percentile(runs[baseline], 0.99) or 0) * 1e6:.1f} us"
                ),
                details={
                    "median_us": {k: round(v * 1e6, 2) for k, v in median.items()},
                    "transactions": len(runs[case]),
                },
            )
        )
    return measurements
