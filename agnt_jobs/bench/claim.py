"""Claim at scale: how long a worker's claim takes with a thousand, a hundred
thousand and a million jobs waiting, and with a thousand waiting beside a million
finished ones, against the claim with a thousand waiting.

The claim timed is the one our worker makes (``AgntWorker._claim``): the
statement ``CLAIM_JOBS`` of ``agnt_jobs.scheduler.worker``, which takes up to
``BATCH`` jobs with ``agnt_fenced_claim(queues, worker_id, n, claim)`` (the
jobs ``agnt_claim_jobs(queues, worker_id, n)`` takes) and records their
runs' starts, sent through our App's connector in a child process
(``python -m agnt_jobs.bench.claim``). Beside it, claim by claim in the same
child, the baseline: Procrastinate's ``fetch_job`` (``procrastinate_fetch_job_v2``,
one job) through the same connector. The same child then times both functions'
bare statements on one psycopg connection, the floor a connector's cost sits on.
Each claimed job is finished and a new one deferred, outside the timing, so the
number waiting holds while the table churns as a live queue's does.

The table is filled with ``generate_series`` INSERTs with the job table's
triggers off (a bulk load: no event row or NOTIFY per job), then VACUUM ANALYZE,
as autovacuum leaves a table that size. The plan of each claim is its function's
own statement, prepared and explained (``explain_claim``): the plan of the first
call of a session and of the tenth, with the indexes each reads. Last,
``clean_finished_jobs`` deletes the million finished jobs and the claim is timed
again, before and after a VACUUM.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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

# Jobs each of our claims asks for: a worker's free slots at the default
# concurrency when all are free.
BATCH = 10
# The claims timed, by the function each calls: ours first, then the baseline.
OURS = "agnt_claim_jobs"
FETCH = "procrastinate_fetch_job_v2"
WAYS = ("ours", "ours_bare", "procrastinate", "procrastinate_bare")

BARE_SQL = {
    OURS: "SELECT id FROM agnt_claim_jobs(NULL, %s, %s)",
    FETCH: "SELECT id FROM procrastinate_fetch_job_v2(NULL, %s)",
}
FINISH_SQL = (
    "SELECT procrastinate_finish_job_v1(id, 'succeeded', false) "
    "FROM unnest(%s::bigint[]) AS id"
)
DEFER_SQL = (
    "INSERT INTO procrastinate_jobs (queue_name, task_name, args) "
    "SELECT %s, %s, '{}' FROM generate_series(1, %s)"
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


# Where each function's statement sits in its source (``pg_proc.prosrc``), and
# the names its arguments go by there; each becomes the prepared statement's
# parameter of that number.
_SHAPES = {
    FETCH: (
        r"(WITH candidate AS .*?RETURNING procrastinate_jobs\.\*)\s+INTO found_jobs",
        {"target_queue_names": "$1", "p_worker_id": "$2"},
    ),
    OURS: (r"\$claim\$(.*?)\$claim\$", {}),
}
# The prepared statement's parameters, and what each call passes.
_PARAMETERS = {
    FETCH: ("character varying[], bigint", "NULL, {worker}"),
    OURS: ("character varying[], bigint, integer", f"NULL, {{worker}}, {BATCH}"),
}


def claim_statement(connection: psycopg.Connection[Any], function: str) -> str:
    """The statement inside ``function`` (``procrastinate_fetch_job_v2`` or
    ``agnt_claim_jobs``), read from the server's copy of it, its arguments as
    ``$1`` (queues), ``$2`` (worker) and, for ours, ``$3`` (how many)."""
    row = connection.execute(
        "SELECT prosrc FROM pg_proc WHERE proname = %s", [function]
    ).fetchone()
    pattern, names = _SHAPES[function]
    found = re.search(pattern, row[0] if row else "", re.DOTALL)
    if found is None:
        raise LookupError(f"{function} has no statement of the known shape")
    statement = found.group(1).strip()
    for name, parameter in names.items():
        statement = re.sub(rf"\b{name}\b", parameter, statement)
    return statement


def explain_claim(
    url: str, function: str = OURS, calls: int = PLAN_CALLS
) -> dict[str, Any]:
    """The claim's plan as executed (EXPLAIN ANALYZE, BUFFERS) at the first call of
    a session and at call ``calls``, every claim rolled back. A PL/pgSQL function
    plans a static statement as a prepared statement is planned (afresh for five
    calls, then perhaps a generic plan), so the function's statement is prepared
    and explained here: a plain EXPLAIN of the function call sees only the call.
    Ours runs its statement with ``EXECUTE``, planned afresh at every call with
    its values, as the first call of a prepared statement is: its plan is the
    first call's at every call."""
    plans: list[str] = []
    with psycopg.connect(url) as connection:
        try:
            statement = claim_statement(connection, function)
        except LookupError as error:
            reason = f"unavailable: {error}"
            return {"first": reason, "last": reason, "indexes": [], "same": None}
        row = connection.execute(
            "SELECT worker_id FROM procrastinate_register_worker_v1()"
        ).fetchone()
        worker = int(row[0]) if row else 0
        types, values = _PARAMETERS[function]
        connection.execute(f"PREPARE agnt_claim ({types}) AS {statement}")
        for _ in range(calls):
            lines = connection.execute(
                "EXPLAIN (ANALYZE, BUFFERS) EXECUTE agnt_claim("
                + values.format(worker=worker)
                + ")"
            ).fetchall()
            plans.append("\n".join(line[0] for line in lines))
        connection.rollback()
    first, last = plans[0], plans[-1]
    # What the worker's claim runs: for ours the first call's plan, every time.
    runs = first if function == OURS else last
    return {
        "function": function,
        "statement": statement,
        "first": first,
        "last": last,
        "runs": runs,
        "indexes": indexes(runs),
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


def _plans(url: str) -> dict[str, Any]:
    return {"plan": explain_claim(url, OURS), "fetch_plan": explain_claim(url, FETCH)}


def _say(ctx: BenchContext, name: str, result: dict[str, Any]) -> None:
    ours, fetch, plan = result["ours"], result["procrastinate"], result["plan"]
    ctx.say(
        f"claim {name}: ours ({BATCH} jobs a claim) p50 {ours['p50_ms']} ms, p99 "
        f"{ours['p99_ms']} ms; Procrastinate's fetch (1 job) p50 {fetch['p50_ms']} "
        f"ms, p99 {fetch['p99_ms']} ms; plan of our claim:\n"
        + "\n".join(f"    {line}" for line in plan["runs"].splitlines())
        + f"\n  plan of Procrastinate's fetch at call {PLAN_CALLS} reads "
        + (", ".join(result["fetch_plan"]["indexes"]) or "-")
    )


def _measurement(
    name: str, result: dict[str, Any], base: dict[str, Any] | None, goal: bool
) -> Measurement:
    p99 = result["ours"]["p99_ms"]
    base_p99 = None if base is None else base["ours"]["p99_ms"]
    value = ratio(p99, base_p99)
    plan, fetch = result["plan"], result["procrastinate"]
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
            f"agnt_claim_jobs of {BATCH}: p50 {result['ours']['p50_ms']} ms, bare "
            f"statement p50 {result['ours_bare']['p50_ms']} / p99 "
            f"{result['ours_bare']['p99_ms']} ms, plan reads "
            f"{', '.join(plan['indexes']) or plan['runs']}; Procrastinate's fetch "
            f"of 1: p50 {fetch['p50_ms']} / p99 {fetch['p99_ms']} ms, bare p50 "
            f"{result['procrastinate_bare']['p50_ms']} / p99 "
            f"{result['procrastinate_bare']['p99_ms']} ms, plan reads "
            f"{', '.join(result['fetch_plan']['indexes']) or '-'}; table "
            f"{result['table']}"
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
            {way: [] for way in WAYS} for _ in plans
        ]
        rounds: list[list[float | None]] = [[] for _ in plans]
        for round_number in range(ctx.repeats):
            shift = round_number % len(plans)
            for index in [*range(shift, len(plans)), *range(shift)]:
                timed = _claim(urls[index], claims)
                for way in WAYS:
                    latencies[index][way] += timed[way]
                rounds[index].append(_ms(timed["ours"], 0.99))
        measurements: list[Measurement] = []
        base: dict[str, Any] | None = None
        for index, scenario in enumerate(plans):
            result = {
                "table": _counts(urls[index]),
                **_figures(latencies[index]),
                "p99_ms_by_round": rounds[index],
                **_plans(urls[index]),
            }
            _say(ctx, scenario.name, result)
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
            **_plans(url),
            "retention": {
                "jobs_deleted": deleted,
                "seconds": done.output["seconds"],
                "before": before,
                "after": after,
            },
        }
        _say(ctx, label, result)
        results.append(_measurement(label, result, base, goal=False))
    results[0].note = (
        f"clean_finished_jobs deleted {deleted:,} jobs in {done.output['seconds']} s "
        f"(table {before['table_mb']} MB before, {after['table_mb']} MB after, "
        "before any VACUUM); " + results[0].note
    )
    return results


# The child: our worker's claim and Procrastinate's fetch, claim by claim in turn
# (a change in load falls on both alike), through our App's connector; then the
# two bare statements the same way on one psycopg connection.


def _replace(side: psycopg.Connection[Any], ids: list[int]) -> None:
    """Finish the claimed jobs and defer as many: the number waiting holds."""
    if not ids:
        raise RuntimeError("no job was waiting to be claimed")
    side.execute(FINISH_SQL, [ids])
    side.execute(DEFER_SQL, [NOOP_QUEUE, NOOP, len(ids)])


async def _through_app(url: str, claims: int) -> dict[str, list[float]]:
    from agnt_jobs.app import app
    from agnt_jobs.scheduler.worker import CLAIM_JOBS

    latencies: dict[str, list[float]] = {"ours": [], "procrastinate": []}
    async with app.open_async():
        manager, connector = app.job_manager, app.connector
        worker_id = await manager.register_worker()
        sent = itertools.count(1)

        async def ours() -> list[int]:
            rows = await connector.execute_query_all_async(
                CLAIM_JOBS,
                queues=None,
                worker_id=worker_id,
                n=BATCH,
                claim=next(sent),
                worker_name="bench",
            )
            return [row["id"] for row in rows]

        async def procrastinate() -> list[int]:
            job = await manager.fetch_job(queues=None, worker_id=worker_id)
            return [] if job is None or job.id is None else [job.id]

        with psycopg.connect(url, autocommit=True) as side:
            for number in range(WARMUP + claims):
                for way, claim in (("ours", ours), ("procrastinate", procrastinate)):
                    started = time.perf_counter()
                    ids = await claim()
                    elapsed = time.perf_counter() - started
                    if number >= WARMUP:
                        latencies[way].append(elapsed * 1000)
                    _replace(side, ids)
        await manager.unregister_worker(worker_id)
    return latencies


def _bare(url: str, claims: int) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {"ours_bare": [], "procrastinate_bare": []}
    with (
        psycopg.connect(url, autocommit=True) as connection,
        psycopg.connect(url, autocommit=True) as side,
    ):
        row = connection.execute(
            "SELECT worker_id FROM procrastinate_register_worker_v1()"
        ).fetchone()
        worker_id = row[0] if row else None
        ways = (
            ("ours_bare", BARE_SQL[OURS], [worker_id, BATCH]),
            ("procrastinate_bare", BARE_SQL[FETCH], [worker_id]),
        )
        for number in range(WARMUP + claims):
            for way, sql, params in ways:
                started = time.perf_counter()
                claimed = connection.execute(sql, params).fetchall()
                elapsed = time.perf_counter() - started
                if number >= WARMUP:
                    latencies[way].append(elapsed * 1000)
                _replace(side, [row[0] for row in claimed if row[0] is not None])
        connection.execute("SELECT procrastinate_unregister_worker_v1(%s)", [worker_id])
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description="Time claims through our App.")
    parser.add_argument("--claims", type=int, required=True)
    args = parser.parse_args()
    url = os.environ["AGNT_DATABASE_URL"]
    timed = asyncio.run(_through_app(url, args.claims))
    timed.update(_bare(url, args.claims))
    print(json.dumps(timed))


if __name__ == "__main__":
    main()
