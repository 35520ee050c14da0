"""Child process of the queue benchmark: batch-defer N no-op jobs through one App,
then time one worker of that App draining them, and print the figures as JSON.

    python -m agnt_jobs.bench.drain ours --jobs 2000 --concurrency 10

With ``--lock NAME`` every job holds the one lock, so they can only run one after
another: the worker waits for new jobs (a drain that stops at the first fetch that
finds nothing would stop at the first job that holds the lock) and is stopped once
none is left; that measures how soon a released lock hands over.

A fresh process per measurement, so both Apps start from the same state (nothing
imported or cached by the other's run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from typing import Any

from agnt_jobs.bench.apps import APPS
from agnt_jobs.bench.base import NOOP, NOOP_QUEUE


async def _count(app: Any, status: str) -> int:
    row = await app.connector.execute_query_one_async(
        "SELECT count(*) AS n FROM procrastinate_jobs "
        "WHERE queue_name = %(queue)s AND status = %(status)s",
        queue=NOOP_QUEUE,
        status=status,
    )
    return int(row["n"])


async def _until_drained(app: Any, worker: asyncio.Task[Any]) -> None:
    while await _count(app, "todo") or await _count(app, "doing"):
        if worker.done():
            return
        await asyncio.sleep(0.02)
    worker.cancel()  # a graceful stop: no job is left to run
    with contextlib.suppress(asyncio.CancelledError):
        await worker


async def _split(app: Any, started: float, returned: float) -> dict[str, float]:
    """Where the drain's time went, from the jobs' events (the database's clock,
    the same machine's): the worker's start to its first claim, its first claim
    to its last job's end, and that end to the worker's return, in seconds."""
    row = await app.connector.execute_query_one_async(
        "SELECT extract(epoch FROM min(e.at) FILTER (WHERE e.type = 'started'))"
        "         AS first_claim,"
        "       extract(epoch FROM max(e.at) FILTER (WHERE e.type <> 'started'))"
        "         AS last_end "
        "FROM procrastinate_events e JOIN procrastinate_jobs j ON j.id = e.job_id "
        "WHERE j.queue_name = %(queue)s",
        queue=NOOP_QUEUE,
    )
    if row["first_claim"] is None or row["last_end"] is None:
        return {}
    first, last = float(row["first_claim"]), float(row["last_end"])
    return {
        "start_seconds": round(first - started, 4),
        "claims_seconds": round(last - first, 4),
        "stop_seconds": round(returned - last, 4),
    }


async def drain(args: argparse.Namespace) -> dict[str, Any]:
    app = APPS[args.app]
    async with app.open_async():
        task = app.tasks[NOOP]
        deferrer: Any = task
        if args.lock:
            deferrer = task.configure(lock=args.lock, queue=NOOP_QUEUE)
        started = time.perf_counter()
        for first in range(0, args.jobs, args.batch):
            count = min(args.batch, args.jobs - first)
            await deferrer.batch_defer_async(*([{}] * count))
        defer_seconds = time.perf_counter() - started

        started = time.perf_counter()
        started_at = time.time()
        worker = asyncio.create_task(
            app.run_worker_async(
                queues=[NOOP_QUEUE],
                wait=args.lock is not None,
                concurrency=args.concurrency,
                delete_jobs=args.delete_jobs,
                listen_notify=args.listen_notify,
                fetch_job_polling_interval=args.polling,
                install_signal_handlers=False,
            )
        )
        if args.lock:
            await _until_drained(app, worker)
        else:
            await worker
        drain_seconds = time.perf_counter() - started
        returned_at = time.time()
        split = await _split(app, started_at, returned_at)
        left = await _count(app, "todo")
        succeeded = await _count(app, "succeeded")
    return {
        "app": args.app,
        "jobs": args.jobs,
        "left": left,
        "succeeded": succeeded,
        "defer_seconds": round(defer_seconds, 4),
        "defer_per_second": round(args.jobs / defer_seconds, 1),
        "drain_seconds": round(drain_seconds, 4),
        "jobs_per_second": round(args.jobs / drain_seconds, 1),
        **split,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", choices=sorted(APPS))
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--delete-jobs", default="never")
    parser.add_argument(
        "--listen-notify", action=argparse.BooleanOptionalAction, default=True
    )
    parser.add_argument("--polling", type=float, default=5.0)
    parser.add_argument("--lock", default=None, help="the one lock every job holds")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(drain(args))))


if __name__ == "__main__":
    main()
