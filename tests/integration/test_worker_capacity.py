"""What the queue benchmark changed in the worker, held by tests: the run history
keeps writing through a connection that died, and a worker really runs
``concurrency`` sync job bodies at once (not the six threads Python gives a
2-core machine's event loop)."""

from __future__ import annotations

import asyncio
import threading

import psycopg
import sqlalchemy as sa
from procrastinate import App
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler.bodies import BODIES, RunContext
from agnt_jobs.scheduler.history import START_RUN, writer_for
from agnt_jobs.scheduler.tasks import make_task


def _run_row(job_id: int, attempt: int = 1) -> dict[str, object]:
    return {
        "job_id": job_id,
        "attempt": attempt,
        "job": "selfcheck",
        "queue_name": "default",
        "worker_name": "w",
        "worker_id": None,
    }


async def test_history_writer_survives_a_dead_connection(
    app: App, engine: Engine, db_url: str
) -> None:
    async with app.open_async():
        writer = writer_for(app.connector)
        assert writer is not None
        async with writer:
            await writer.execute(START_RUN, **_run_row(1))
            connection = await writer._borrow()
            with psycopg.connect(db_url, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(%s)", [connection.info.backend_pid]
                )
            await writer.execute(START_RUN, **_run_row(2))
        # Given back to the pool in the state it was lent.
        async with app.connector.pool.connection() as pooled:
            assert not pooled.autocommit
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT job_id FROM job_runs ORDER BY 1")).all()
    assert [row.job_id for row in rows] == [1, 2]


async def test_worker_runs_as_many_sync_bodies_at_once_as_its_concurrency(
    app: App, engine: Engine
) -> None:
    concurrency = 10
    # Each body waits until all ten are running: with fewer threads than jobs the
    # barrier breaks and the jobs fail.
    barrier = threading.Barrier(concurrency, timeout=20)

    def meet(ctx: RunContext) -> dict[str, int]:
        return {"arrived": barrier.wait()}

    BODIES["test_meet"] = meet
    try:
        task = make_task(app, "test_meet", meet)
        task.lock = task.queueing_lock = None
        async with app.open_async():
            for _ in range(concurrency):
                await task.defer_async()
            await app.run_worker_async(
                wait=False, concurrency=concurrency, install_signal_handlers=False
            )
    finally:
        BODIES.pop("test_meet")
        app.tasks.pop("test_meet")
    with engine.connect() as c:
        statuses = c.execute(
            sa.text(
                "SELECT status, count(*) FROM job_runs "
                "WHERE task_name = 'test_meet' GROUP BY status"
            )
        ).all()
    assert dict(statuses) == {"succeeded": concurrency}


async def test_a_jobs_slot_is_free_for_the_next_claim_while_its_end_is_recorded(
    app: App, engine: Engine, db_url: str
) -> None:
    """At concurrency 1, the first job's end waits on a lock its body left on the
    job's row; the second job is claimed and runs meanwhile."""
    locker = psycopg.connect(db_url)
    ran: list[int | None] = []
    second_ran = threading.Event()

    def body(ctx: RunContext) -> dict[str, int]:
        ran.append(ctx.job_id)
        if len(ran) == 1:
            # Held until the test commits: the end's FOR UPDATE of this row waits.
            locker.execute(
                "SELECT id FROM procrastinate_jobs WHERE id = %s FOR UPDATE",
                [ctx.job_id],
            )
        else:
            second_ran.set()
        return {}

    BODIES["test_slot"] = body
    try:
        task = make_task(app, "test_slot", body, queue="test_slot")
        task.lock = task.queueing_lock = None
        async with app.open_async():
            for _ in range(2):
                await task.defer_async()
            worker = asyncio.create_task(
                app.run_worker_async(
                    queues=["test_slot"],
                    wait=False,
                    concurrency=1,
                    install_signal_handlers=False,
                )
            )
            try:
                assert await asyncio.to_thread(second_ran.wait, 20)
                with engine.connect() as c:
                    first_status = c.execute(
                        sa.text("SELECT status FROM procrastinate_jobs WHERE id = :id"),
                        {"id": ran[0]},
                    ).scalar_one()
                assert first_status == "doing"  # its end still waits on the lock
            finally:
                locker.commit()
            await asyncio.wait_for(worker, 20)
    finally:
        locker.close()
        BODIES.pop("test_slot")
        app.tasks.pop("test_slot")
    with engine.connect() as c:
        statuses = c.execute(
            sa.text(
                "SELECT status FROM procrastinate_jobs WHERE task_name = 'test_slot'"
            )
        ).scalars()
        assert list(statuses) == ["succeeded", "succeeded"]
