"""Claim at scale: how long a worker's claim of the next job takes with a thousand,
a hundred thousand and a million jobs waiting, and with a thousand waiting beside a
million finished ones, against the claim with a thousand waiting.

The claim is the statement our worker claims a job with: Procrastinate's
``fetch_job`` (``procrastinate_fetch_job_v2``), called through our App's job
manager and connector in a child process, as the worker's fetch loop calls it
(``python -m agnt_jobs.bench.claim``). Each claimed job is then finished and one
new job deferred, outside the timing, so the number waiting holds while the table
churns as a live queue's does. The same child times the bare statement on one
psycopg connection, the floor our connector's cost sits on.

The table is filled with ``generate_series`` INSERTs with the job table's
triggers off (a bulk load: no event row or NOTIFY per job), then VACUUM ANALYZE,
as autovacuum leaves a table that size. The plan of the claim is the function's own
statement, prepared and explained (``explain_claim``): the plan of the first call
of a session and of the tenth, after the plan cache may have switched to a generic
plan, with the indexes each reads. Last, ``clean_finished_jobs`` deletes the
million finished jobs and the claim is timed again, before and after a VACUUM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from agnt_jobs.bench.base import NOOP, NOOP_QUEUE, BenchContext
from agnt_jobs.bench.child import child_env, run_module
from agnt_jobs.bench.report import Measurement, percentile, ratio

WAITING = (1_000, 100_000, 1_000_000)
FINISHED = 1_000_000
CLAIMS = 1000
# Claims before the timed ones: the pool's connections opened, the plan cached.
WARMUP = 20
GOAL = 2.0
# The call whose plan is reported as the one a long-lived connection runs:
# PL/pgSQL plans a statement afresh for its first five calls, then may keep a
# generic plan.
PLAN_CALLS = 10

CLAIM_SQL = "SELECT id FROM procrastinate_fetch_job_v2(NULL, %s)"
FINISH_SQL = "SELECT procrastinate_finish_job_v1(%s, 'succeeded', false)"
DEFER_SQL = (
    "INSERT INTO procrastinate_jobs (queue_name, task_name, args) VALUES (%s, %s, '{}')"
)
FILL_SQL = """
INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, attempts)
SELECT %(queue)s, %(task)s, '{}', %(status)s::procrastinate_job_status, %(attempts)s
FROM generate_series(1, %(count)s)
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    waiting: int
    finished: int = 0


def scenarios(
    waiting: tuple[int, ...] = WAITING, finished: int = FINISHED
) -> list[Scenario]:
    """Growing waiting counts, then the smallest beside ``finished`` finished jobs."""
    plans = [Scenario(f"{count:,} waiting", count) for count in waiting]
    plans.append(
        Scenario(f"{waiting[0]:,} waiting, {finished:,} finished", waiting[0], finished)
    )
    return plans


def _fill(url: str, status: str, count: int) -> None:
    """``count`` jobs of ``status`` in one INSERT, the job table's triggers off."""
    with psycopg.connect(url) as connection:
        connection.execute("ALTER TABLE procrastinate_jobs DISABLE TRIGGER USER")
        connection.execute(
            FILL_SQL,
            {
                "queue": NOOP_QUEUE,
                "task": NOOP,
                "status": status,
                "attempts": 0 if status == "todo" else 1,
                "count": count,
            },
        )
        connection.execute("ALTER TABLE procrastinate_jobs ENABLE TRIGGER USER")


def _vacuum(url: str) -> None:
    """VACUUM ANALYZE, as autovacuum leaves a table."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE procrastinate_jobs")


def _counts(url: str) -> dict[str, float]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY status"
        ).fetchall()
        size = connection.execute(
            "SELECT pg_total_relation_size('procrastinate_jobs')"
        ).fetchone()
    counts: dict[str, float] = {status: int(n) for status, n in rows}
    counts["table_mb"] = round(int(size[0] if size else 0) / 2**20, 1)
    return counts


def _prepare(url: str, scenario: Scenario) -> None:
    """Fill an empty job table for the scenario: the finished jobs first, as the
    older, then the waiting ones."""
    if scenario.finished:
        _fill(url, "succeeded", scenario.finished)
    _fill(url, "todo", scenario.waiting)
    _vacuum(url)


INDEX = re.compile(
    r"(?:Index Scan|Index Only Scan|Bitmap Index Scan)[^\n]*? (?:using|on) (\w+)"
)


def indexes(plan: str) -> list[str]:
    """The indexes a plan's text reads, in order of first use."""
    return list(dict.fromkeys(INDEX.findall(plan)))


def claim_statement(connection: psycopg.Connection[Any]) -> str:
    """The statement inside ``procrastinate_fetch_job_v2``, read from the server's
    copy of the function, its two arguments as ``$1`` (queues) and ``$2`` (worker)."""
    row = connection.execute(
        "SELECT prosrc FROM pg_proc WHERE proname = 'procrastinate_fetch_job_v2'"
    ).fetchone()
    found = re.search(
        r"(WITH candidate AS .*?RETURNING procrastinate_jobs\.\*)\s+INTO found_jobs",
        row[0] if row else "",
        re.DOTALL,
    )
    if found is None:
        raise LookupError(
            "procrastinate_fetch_job_v2 has no statement of the known shape"
        )
    statement = re.sub(r"\btarget_queue_names\b", "$1", found.group(1))
    return re.sub(r"\bp_worker_id\b", "$2", statement)


def explain_claim(url: str, calls: int = PLAN_CALLS) -> dict[str, Any]:
    """The claim's plan as executed (EXPLAIN ANALYZE, BUFFERS) at the first call of
    a session and at call ``calls``, every claim rolled back. A PL/pgSQL function
    plans its statement as a prepared statement is planned (afresh for five
    calls, then perhaps a generic plan), so the function's statement is prepared
    and explained here: a plain EXPLAIN of the function call sees only the call."""
    plans: list[str] = []
    with psycopg.connect(url) as connection:
        try:
            statement = claim_statement(connection)
        except LookupError as error:
            reason = f"unavailable: {error}"
            return {"first": reason, "last": reason, "indexes": [], "same": None}
        row = connection.execute(
            "SELECT worker_id FROM procrastinate_register_worker_v1()"
        ).fetchone()
        worker = int(row[0]) if row else 0
        connection.execute(
            f"PREPARE agnt_claim (character varying[], bigint) AS {statement}"
        )
        for _ in range(calls):
            lines = connection.execute(
                f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE agnt_claim(NULL, {worker})"
            ).fetchall()
            plans.append("\n".join(line[0] for line in lines))
        connection.rollback()
    first, last = plans[0], plans[-1]
    return {
        "statement": statement,
        "first": first,
        "last": last,
        "indexes": indexes(last),
        "first_indexes": indexes(first),
        "same": indexes(first) == indexes(last),
    }


def _claim(url: str, claims: int) -> dict[str, Any]:
    done = run_module(
        "agnt_jobs.bench.claim", [f"--claims={claims}"], child_env(url), timeout=1800
    )
    return dict(done.output)


def _ms(values: list[float], fraction: float) -> float | None:
    found = percentile(values, fraction)
    return None if found is None else round(found, 3)


def _figures(latencies: dict[str, list[float]]) -> dict[str, Any]:
    return {
        way: {
            "p50_ms": _ms(values, 0.5),
            "p99_ms": _ms(values, 0.99),
            "max_ms": _ms(values, 1.0),
            "mean_ms": round(statistics.fmean(values), 3) if values else None,
        }
        for way, values in latencies.items()
    }


def _say(
    ctx: BenchContext, name: str, figures: dict[str, Any], plan: dict[str, Any]
) -> None:
    ctx.say(
        f"claim {name}: p50 {figures['ours']['p50_ms']} ms, p99 "
        f"{figures['ours']['p99_ms']} ms; plan of call {PLAN_CALLS}:\n"
        + "\n".join(f"    {line}" for line in plan["last"].splitlines())
    )


def _measurement(
    name: str, result: dict[str, Any], base: dict[str, Any] | None, goal: bool
) -> Measurement:
    p99 = result["ours"]["p99_ms"]
    base_p99 = None if base is None else base["ours"]["p99_ms"]
    value = ratio(p99, base_p99)
    plan = result["plan"]
    return Measurement(
        family="claim",
        name=f"claim p99, {name}",
        value=p99,
        unit="ms",
        baseline=base_p99,
        ratio=value,
        goal=f"<= {GOAL:g}x the smallest" if goal else "",
        met=None if not goal or value is None else value <= GOAL,
        note=(
            f"p50 {result['ours']['p50_ms']} ms; bare statement p50 "
            f"{result['bare']['p50_ms']} / p99 {result['bare']['p99_ms']} ms; "
            f"plan reads {', '.join(plan['indexes']) or plan['last']}"
            + (
                ""
                if plan["same"] in (True, None)
                else f" (first call: {', '.join(plan['first_indexes'])})"
            )
            + f"; table {result['table']}"
        ),
        details=result,
    )


def run(
    ctx: BenchContext,
    waiting: tuple[int, ...] = WAITING,
    finished: int = FINISHED,
    claims: int = CLAIMS,
) -> list[Measurement]:
    """Each scenario on a database of its own, filled first; then ``ctx.repeats``
    rounds of ``claims`` claims on each in turn (the order rotated each round), so
    that a change in the machine's load falls on every scenario alike."""
    plans = scenarios(waiting, finished)
    names: list[str] = []
    urls: list[str] = []
    try:
        for number, scenario in enumerate(plans):
            names.append(ctx.server.migrated(f"claim_{number}"))
            urls.append(ctx.server.url(names[-1]))
            ctx.say(f"claim: filling {scenario.name}")
            _prepare(urls[-1], scenario)
        latencies: list[dict[str, list[float]]] = [
            {"ours": [], "bare": []} for _ in plans
        ]
        rounds: list[list[float | None]] = [[] for _ in plans]
        for round_number in range(ctx.repeats):
            shift = round_number % len(plans)
            for index in [*range(shift, len(plans)), *range(shift)]:
                timed = _claim(urls[index], claims)
                for way in ("ours", "bare"):
                    latencies[index][way] += timed[way]
                rounds[index].append(_ms(timed["ours"], 0.99))
        measurements: list[Measurement] = []
        base: dict[str, Any] | None = None
        for index, scenario in enumerate(plans):
            result = {
                "table": _counts(urls[index]),
                **_figures(latencies[index]),
                "p99_ms_by_round": rounds[index],
                "plan": explain_claim(urls[index]),
            }
            _say(ctx, scenario.name, result, result["plan"])
            base = base or result
            # The goal is set for the largest waiting count and the finished jobs.
            goal = scenario.waiting == max(waiting) or bool(scenario.finished)
            measurements.append(_measurement(scenario.name, result, base, goal))
        measurements += _retention(ctx, urls[-1], base, claims)
    finally:
        for name in names:
            ctx.server.wait_idle(name)
            ctx.server.drop(name)
    return measurements


def _retention(
    ctx: BenchContext, url: str, base: dict[str, Any] | None, claims: int
) -> list[Measurement]:
    """``clean_finished_jobs`` over the finished jobs (none has an event, so all
    are past any retention window); the claim right after it, then after VACUUM."""
    before = _counts(url)
    done = run_module(
        "agnt_jobs.bench.runjob",
        ["clean_finished_jobs", f"--at={datetime.now(UTC).isoformat()}"],
        child_env(url),
        timeout=3600,
    )
    after = _counts(url)
    deleted = done.output["result"]["jobs_deleted"]
    ctx.say(
        f"claim: clean_finished_jobs deleted {deleted:,} jobs in "
        f"{done.output['seconds']} s; table {before['table_mb']} MB before, "
        f"{after['table_mb']} MB after"
    )
    results = []
    for label, vacuum in (
        ("after retention", False),
        ("after retention and VACUUM", True),
    ):
        if vacuum:
            _vacuum(url)
        result = {
            "table": _counts(url),
            **_figures(_claim(url, claims)),
            "plan": explain_claim(url),
            "retention": {
                "jobs_deleted": deleted,
                "seconds": done.output["seconds"],
                "before": before,
                "after": after,
            },
        }
        _say(ctx, label, result, result["plan"])
        results.append(_measurement(label, result, base, goal=False))
    results[0].note = (
        f"clean_finished_jobs deleted {deleted:,} jobs in {done.output['seconds']} s "
        f"(table {before['table_mb']} MB before, {after['table_mb']} MB after, "
        "before any VACUUM); " + results[0].note
    )
    return results


# The child: claims through our App, as the worker's fetch loop makes them.


async def _ours(url: str, claims: int) -> list[float]:
    from agnt_jobs.app import app

    latencies = []
    async with app.open_async():
        manager = app.job_manager
        worker_id = await manager.register_worker()
        with psycopg.connect(url, autocommit=True) as side:
            for number in range(WARMUP + claims):
                started = time.perf_counter()
                job = await manager.fetch_job(queues=None, worker_id=worker_id)
                elapsed = time.perf_counter() - started
                if job is None:
                    raise RuntimeError("no job was waiting to be claimed")
                if number >= WARMUP:
                    latencies.append(elapsed * 1000)
                side.execute(FINISH_SQL, [job.id])
                side.execute(DEFER_SQL, [NOOP_QUEUE, NOOP])
        await manager.unregister_worker(worker_id)
    return latencies


def _bare(url: str, claims: int) -> list[float]:
    latencies = []
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT worker_id FROM procrastinate_register_worker_v1()"
        ).fetchone()
        worker_id = row[0] if row else None
        for number in range(WARMUP + claims):
            started = time.perf_counter()
            claimed = connection.execute(CLAIM_SQL, [worker_id]).fetchone()
            elapsed = time.perf_counter() - started
            if not claimed or claimed[0] is None:
                raise RuntimeError("no job was waiting to be claimed")
            if number >= WARMUP:
                latencies.append(elapsed * 1000)
            connection.execute(FINISH_SQL, [claimed[0]])
            connection.execute(DEFER_SQL, [NOOP_QUEUE, NOOP])
        connection.execute("SELECT procrastinate_unregister_worker_v1(%s)", [worker_id])
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description="Time claims through our App.")
    parser.add_argument("--claims", type=int, required=True)
    args = parser.parse_args()
    url = os.environ["AGNT_DATABASE_URL"]
    ours = asyncio.run(_ours(url, args.claims))
    print(json.dumps({"ours": ours, "bare": _bare(url, args.claims)}))


if __name__ == "__main__":
    main()
