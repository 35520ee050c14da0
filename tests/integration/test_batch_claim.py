"""The batch claim (the SQL function ``agnt_claim_jobs``) against the reference it
stands for: Procrastinate's own ``procrastinate_fetch_job_v2``, from the pinned
Procrastinate's schema, called n times in a row. On the same generated job sets
(queues, priorities, locks, queueing locks, running jobs, jobs not due yet) both
must take the same jobs in the same order; a change of Procrastinate's fetch rules
in a new version fails this test until our claim follows it.

And what the worker does with a claim: one statement for all its free slots, each
run's start recorded by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import pytest
import sqlalchemy as sa
from procrastinate import App
from sqlalchemy.engine import Connection, Engine

from agnt_jobs.scheduler.bodies import BODIES, RunContext
from agnt_jobs.scheduler.tasks import make_task

QUEUES = ("q_a", "q_b", "q_c")
LOCKS = (None, None, "l_1", "l_2", "l_3", "l_4")
SETS = 60


def _generate(connection: Connection, seed: int) -> None:
    """A random job set: at most one running job per lock and one waiting job per
    queueing lock, as Procrastinate's unique indexes require."""
    rng = random.Random(seed)
    connection.execute(sa.text("DELETE FROM procrastinate_jobs"))
    running_locks: set[str] = set()
    for number in range(rng.randint(1, 40)):
        lock = rng.choice(LOCKS)
        status = rng.choices(["todo", "doing", "succeeded"], [6, 1, 1])[0]
        if status == "doing" and (lock in running_locks):
            status = "todo"
        if status == "doing" and lock is not None:
            running_locks.add(lock)
        connection.execute(
            sa.text(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, priority, "
                "lock, queueing_lock, args, status, scheduled_at) VALUES (:queue, "
                "'diff', :priority, :lock, :queueing_lock, '{}', :status, "
                "now() + make_interval(secs => :due))"
            ),
            {
                "queue": rng.choice(QUEUES),
                "priority": rng.choice([0, 0, 1, 5, -1]),
                "lock": lock,
                # Unique among waiting jobs: one per job (a claim frees it).
                "queueing_lock": f"ql_{number}" if rng.random() < 0.3 else None,
                "status": status,
                "due": rng.choice([None, -60, -1, 3600]),
            },
        )


def _worker(connection: Connection) -> int:
    return int(
        connection.execute(
            sa.text("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id")
        ).scalar_one()
    )


def _procrastinate(
    connection: Connection, queues: list[str] | None, worker: int, n: int
) -> list[int]:
    taken = []
    for _ in range(n):
        job_id = connection.execute(
            sa.text(
                "SELECT id FROM procrastinate_fetch_job_v2("
                "CAST(:queues AS varchar[]), :worker)"
            ),
            {"queues": queues, "worker": worker},
        ).scalar_one()
        if job_id is None:
            break
        taken.append(job_id)
    return taken


def _ours(
    connection: Connection, queues: list[str] | None, worker: int | None, n: int
) -> list[int]:
    return list(
        connection.execute(
            sa.text(
                "SELECT id FROM agnt_claim_jobs(CAST(:queues AS varchar[]), :worker, "
                ":n) ORDER BY priority DESC, id"
            ),
            {"queues": queues, "worker": worker, "n": n},
        ).scalars()
    )


def _taken_by(
    engine: Engine, seed: int, fetch, queues: list[str] | None, n: int
) -> tuple[list[int], list[tuple]]:
    """What ``fetch`` takes from the job set ``seed``, and the jobs' rows after."""
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            _generate(connection, seed)
            worker = _worker(connection)
            taken = fetch(connection, queues, worker, n)
            after = connection.execute(
                sa.text(
                    "SELECT id, status::text, worker_id = :worker FROM "
                    "procrastinate_jobs ORDER BY id"
                ),
                {"worker": worker},
            ).all()
        finally:
            transaction.rollback()
    # Ids differ between the two transactions (the sequence moves on): compare
    # positions in the generated set instead.
    order = {row[0]: index for index, row in enumerate(after)}
    return [order[job_id] for job_id in taken], [tuple(row[1:]) for row in after]


def test_the_claim_takes_what_procrastinates_fetch_takes_n_times(
    engine: Engine,
) -> None:
    compared = nonempty = 0
    for seed in range(SETS):
        rng = random.Random(seed * 7919)
        queues = rng.choice([None, ["q_a"], ["q_a", "q_b"], list(QUEUES), ["none"]])
        n = rng.choice([1, 2, 3, 5, 10, 50])
        theirs = _taken_by(engine, seed, _procrastinate, queues, n)
        ours = _taken_by(engine, seed, _ours, queues, n)
        assert ours == theirs, f"seed {seed}, queues {queues}, n {n}"
        compared += 1
        nonempty += bool(theirs[0])
    # The sets must exercise the rules, not only empty claims.
    assert compared == SETS and nonempty > SETS // 2


def test_the_claim_skips_jobs_another_claim_holds(engine: Engine) -> None:
    """Two workers claiming at once take disjoint jobs (SKIP LOCKED), as two
    Procrastinate fetches do."""
    with engine.connect() as first, engine.connect() as second:
        with first.begin():
            _generate(first, 1)
            first.execute(sa.text("UPDATE procrastinate_jobs SET lock = NULL"))
            first.execute(
                sa.text(
                    "UPDATE procrastinate_jobs SET status = 'todo', worker_id = NULL,"
                    " scheduled_at = NULL"
                )
            )
            waiting = first.execute(
                sa.text("SELECT count(*) FROM procrastinate_jobs")
            ).scalar_one()
            one, two = _worker(first), _worker(first)
        try:
            with first.begin(), second.begin():
                mine = _ours(first, None, one, 3)
                theirs = _ours(second, None, two, 100)
                assert len(mine) == min(3, waiting)
                assert not set(mine) & set(theirs)
                assert len(mine) + len(theirs) == waiting
                first.rollback()
                second.rollback()
        finally:
            with first.begin():
                first.execute(sa.text("DELETE FROM procrastinate_jobs"))


async def test_a_worker_claims_its_free_slots_in_one_statement_and_records_each_start(
    app: App, engine: Engine
) -> None:
    """Four jobs waiting, a worker of four slots: one claim takes them all (the
    start records share the claim's transaction time) and each run is recorded."""

    def body(ctx: RunContext) -> dict[str, int]:
        time.sleep(0.2)
        return {}

    BODIES["test_batch"] = body
    try:
        task = make_task(app, "test_batch", body, queue="test_batch")
        task.queueing_lock = None
        task.lock = None
        async with app.open_async():
            for _ in range(4):
                await task.defer_async()
            worker = asyncio.create_task(
                app.run_worker_async(
                    queues=["test_batch"],
                    concurrency=4,
                    wait=False,
                    install_signal_handlers=False,
                )
            )
            try:
                await asyncio.wait_for(worker, 30)
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
    finally:
        BODIES.pop("test_batch")
        app.tasks.pop("test_batch")
    with engine.connect() as connection:
        runs = connection.execute(
            sa.text(
                "SELECT count(*), count(DISTINCT started_at), "
                "count(*) FILTER (WHERE status = 'succeeded') "
                "FROM job_runs WHERE task_name = 'test_batch'"
            )
        ).one()
    assert tuple(runs) == (4, 1, 4)


@pytest.mark.parametrize("n", [0])
def test_a_claim_of_no_slots_takes_nothing(engine: Engine, n: int) -> None:
    with engine.connect() as connection, connection.begin():
        _generate(connection, 3)
        assert _ours(connection, None, _worker(connection), n) == []
        connection.rollback()


def test_a_claim_reads_the_first_jobs_off_the_index_not_every_waiting_one(
    engine: Engine,
) -> None:
    """With many jobs waiting, a claim of 10 reads about 10 rows: a plan made once
    for any n and any queues would sort every waiting job at every claim."""
    with engine.connect() as connection:
        with connection.begin():
            connection.execute(sa.text("DELETE FROM procrastinate_jobs"))
            connection.execute(
                sa.text("ALTER TABLE procrastinate_jobs DISABLE TRIGGER USER")
            )
            connection.execute(
                sa.text(
                    "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
                    " SELECT 'q_a', 'many', '{}' FROM generate_series(1, 50000)"
                )
            )
            connection.execute(
                sa.text("ALTER TABLE procrastinate_jobs ENABLE TRIGGER USER")
            )
            connection.execute(sa.text("ANALYZE procrastinate_jobs"))
        try:
            for queues in (None, ["q_a"]):
                with connection.begin():
                    claimed = _ours(connection, queues, None, 10)
                    read = connection.execute(
                        sa.text(
                            "SELECT seq_tup_read + coalesce(idx_tup_fetch, 0)"
                            " FROM pg_stat_xact_user_tables"
                            " WHERE relname = 'procrastinate_jobs'"
                        )
                    ).scalar_one()
                    connection.rollback()
                assert len(claimed) == 10
                assert read < 1000, f"a claim of 10 read {read} rows (queues {queues})"
        finally:
            with connection.begin():
                connection.execute(sa.text("DELETE FROM procrastinate_jobs"))
