"""PgQueuer's side of the peers benchmark (``agnt_jobs.bench.peer_queues``): run by
the Python of PgQueuer's own scratch virtualenv, so it imports nothing of ours.

Installs PgQueuer's schema in the database of ``DB``, enqueues ``N`` no-op jobs in
one call, then one QueueManager runs at most ``C`` at once, dequeuing ``C // 2`` per
round trip (PgQueuer asks for at least twice the batch). Prints one JSON line: the
seconds from the start of the run until PgQueuer's job table is empty (a job leaves
it once its acknowledgement is committed).
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.models import Job
from pgqueuer.queries import Queries


async def _drain(url: str, jobs: int, concurrency: int) -> dict[str, float | int]:
    setup = await asyncpg.connect(url)
    await Queries.from_asyncpg_connection(setup).install()
    await Queries.from_asyncpg_connection(setup).enqueue(
        ["noop"] * jobs, [None] * jobs, [0] * jobs
    )

    connection = await asyncpg.connect(url)
    pgq = PgQueuer.from_asyncpg_connection(connection)
    ran = 0

    async def noop(job: Job) -> None:
        nonlocal ran
        ran += 1

    pgq.entrypoint("noop")(noop)

    started = time.perf_counter()
    worker = asyncio.create_task(
        pgq.run(batch_size=max(1, concurrency // 2), max_concurrent_tasks=concurrency)
    )
    while ran < jobs and not worker.done():
        await asyncio.sleep(0.005)
    while not worker.done() and await setup.fetchval("SELECT count(*) FROM pgqueuer"):
        await asyncio.sleep(0.005)
    seconds = time.perf_counter() - started
    if worker.done():
        worker.result()  # the run ended before the jobs did: its error
    pgq.shutdown.set()
    await asyncio.wait_for(worker, 30)
    await connection.close()
    await setup.close()
    return {
        "jobs": jobs,
        "ran": ran,
        "drain_seconds": seconds,
        "jobs_per_second": jobs / seconds,
    }


def main() -> None:
    figures = asyncio.run(
        _drain(os.environ["DB"], int(os.environ["N"]), int(os.environ["C"]))
    )
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
