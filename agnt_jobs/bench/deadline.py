"""What the worker's query deadline costs: the same queries through the connector,
in one process, as plain Procrastinate sends them (its pool's check before each
lend, no deadline), with the deadline as a task per query (``outage.bounded``
around the query and the check), and as the connector sends them (a timer per
query, the check skipped for a connection that just answered). Rounds alternate
between the three; medians of wall time and of this process's CPU per query.

    python -m agnt_jobs.bench.deadline --url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any, LiteralString

import psycopg
import psycopg_pool
from procrastinate import PsycopgConnector

from agnt_jobs.db import connector, outage

QUERY: LiteralString = "SELECT 1 AS one"
DEADLINE = 15.0
VARIANTS = ("plain", "task per query", "timer per query")


class _TaskPerQuery(connector.SettingsConnector):
    """The connector as it was: each query awaited in a task of its own."""

    async def execute_query_one_async(
        self, query: LiteralString, **arguments: Any
    ) -> dict[str, Any]:
        return await outage.bounded(
            super().execute_query_one_async(query, **arguments), DEADLINE
        )


async def _task_check(connection: psycopg.AsyncConnection[Any]) -> None:
    await outage.bounded(connection.execute(""), DEADLINE)


async def _open(
    variant: str, url: str, size: int
) -> tuple[PsycopgConnector, psycopg_pool.AsyncConnectionPool]:
    pool: psycopg_pool.AsyncConnectionPool
    queries: PsycopgConnector
    if variant == "plain":
        pool = psycopg_pool.AsyncConnectionPool(
            url,
            min_size=size,
            max_size=size,
            open=False,
            check=psycopg_pool.AsyncConnectionPool.check_connection,
            kwargs={"autocommit": True},
        )
        queries = PsycopgConnector()
    elif variant == "task per query":
        pool = psycopg_pool.AsyncConnectionPool(
            url,
            min_size=size,
            max_size=size,
            open=False,
            check=_task_check,
            kwargs={"autocommit": True},
        )
        queries = _TaskPerQuery()
    else:
        pool = connector.autocommit_pool(
            conninfo=url, min_size=size, max_size=size, open=False
        )
        queries = connector.SettingsConnector()
    await pool.open(wait=True)
    await queries.open_async(pool)
    return queries, pool


async def _round(
    queries: PsycopgConnector, count: int, at_once: int
) -> tuple[float, float]:
    each = count // at_once

    async def one() -> None:
        for _ in range(each):
            await queries.execute_query_one_async(QUERY)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(at_once)))
    sent = each * at_once
    return (
        (time.perf_counter() - wall) / sent * 1e6,
        (time.process_time() - cpu) / sent * 1e6,
    )


async def measure(
    url: str, count: int, at_once: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """Median wall and CPU microseconds per query of each variant."""
    opened = {
        variant: await _open(variant, url, min(at_once, 4)) for variant in VARIANTS
    }
    walls: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    cpus: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    try:
        for variant in VARIANTS:
            await _round(opened[variant][0], count // 4, at_once)
        for turn in range(rounds):
            for variant in VARIANTS if turn % 2 == 0 else VARIANTS[::-1]:
                wall, cpu = await _round(opened[variant][0], count, at_once)
                walls[variant].append(wall)
                cpus[variant].append(cpu)
    finally:
        for _, pool in opened.values():
            await pool.close()
    return {
        variant: (statistics.median(walls[variant]), statistics.median(cpus[variant]))
        for variant in VARIANTS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a database to run SELECT 1 on")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--at-once", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    results = asyncio.run(measure(args.url, args.queries, args.at_once, args.rounds))
    plain = results["plain"][1]
    print(f"{args.queries} queries, {args.at_once} at once, median of {args.rounds}")
    print("| variant | wall µs/query | CPU µs/query | CPU vs plain |")
    print("|---|---:|---:|---:|")
    for variant, (wall, cpu) in results.items():
        print(f"| {variant} | {wall:.0f} | {cpu:.0f} | {cpu / plain:.2f} |")


if __name__ == "__main__":
    main()
