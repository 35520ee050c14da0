"""Deferring a job in the caller's transaction (``agnt_defer``, and ``defer`` /
``defer_async`` over it): the job exists exactly when the caller's transaction
commits, lands where ``procrastinate defer`` would put it, is run by a real worker,
and Postgres refuses an unknown job or bad arguments, changing nothing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from procrastinate import App
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from agnt_jobs.scheduler import deploy
from agnt_jobs.scheduler.defer import DeferRefused, defer, defer_async

# The caller's own data, written in the same transaction as the defer.
CALLER_ROW = "INSERT INTO error_log (source, message) VALUES ('backend', 'booking 42')"
JOB = "selfcheck"  # needs no settings: a real worker runs it to success


@pytest.fixture
async def declared(app: App) -> App:
    """The App after a worker of this code started: its jobs are declared."""
    async with app.open_async():
        await deploy.sync_table(app)
    return app


def _jobs(engine: Engine, task: str | None = None) -> list[dict[str, Any]]:
    """Every job, or ``task``'s: a worker run by a test may also defer the ticks of
    schedules that fall due meanwhile."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT id, task_name, queue_name, lock, queueing_lock, args, "
                "scheduled_at, status::text FROM procrastinate_jobs "
                "WHERE task_name = :task OR CAST(:task AS text) IS NULL ORDER BY id"
            ),
            {"task": task},
        )
        return [dict(row._mapping) for row in rows]


def _caller_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT count(*) FROM error_log WHERE source = 'backend'")
        ).scalar_one()


def _state(engine: Engine) -> dict[str, int]:
    """Row counts of every table of the database: what "nothing changed" compares."""
    with engine.connect() as connection:
        tables = connection.execute(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "ORDER BY tablename"
            )
        ).scalars()
        return {
            table: connection.execute(
                sa.text(f'SELECT count(*) FROM "{table}"')
            ).scalar_one()
            for table in list(tables)
        }


async def _drain(app: App) -> None:
    async with app.open_async():
        await app.run_worker_async(wait=False, install_signal_handlers=False)


# --- from SQL ----------------------------------------------------------------------


async def test_sql_commit_defers_one_job_that_a_worker_runs(
    declared: App, db_url: str, engine: Engine
) -> None:
    with psycopg.connect(db_url) as connection:
        connection.execute(CALLER_ROW)
        job_id = connection.execute("SELECT agnt_defer('selfcheck')").fetchone()[0]
    [job] = _jobs(engine)
    task = declared.tasks[JOB]
    assert (job["id"], job["task_name"], job["queue_name"]) == (job_id, JOB, task.queue)
    assert (job["lock"], job["queueing_lock"]) == (task.lock, task.queueing_lock)

    await _drain(declared)

    with engine.connect() as connection:
        run = connection.execute(
            sa.text("SELECT status, result FROM job_runs WHERE job_id = :id"),
            {"id": job_id},
        ).one()
    assert [job["status"] for job in _jobs(engine, JOB)] == ["succeeded"]
    assert run.status == "succeeded" and set(run.result) == {"database_ms"}
    assert _caller_rows(engine) == 1


async def test_sql_rollback_leaves_no_job_and_nothing_changed(
    declared: App, db_url: str, engine: Engine
) -> None:
    before = _state(engine)
    with psycopg.connect(db_url) as connection:
        connection.execute(CALLER_ROW)
        connection.execute("SELECT agnt_defer('selfcheck')")
        connection.rollback()
    assert _state(engine) == before
    assert _jobs(engine) == []


async def test_a_rolled_back_savepoint_in_a_committed_transaction_defers_nothing(
    declared: App, engine: Engine
) -> None:
    with Session(engine) as session, session.begin():
        session.execute(sa.text(CALLER_ROW))
        savepoint = session.begin_nested()
        defer(session, JOB)
        savepoint.rollback()
    assert _caller_rows(engine) == 1
    assert _jobs(engine) == []


async def test_the_job_takes_its_declared_queue_and_locks_for_every_job(
    declared: App, engine: Engine
) -> None:
    """Against the independent reference: the row Procrastinate's own deferrer
    builds for the task (what ``procrastinate defer <job>`` writes)."""
    jobs = sorted(
        name for name in declared.tasks if not name.startswith(("builtin:", "proc"))
    )
    assert len(jobs) >= 40
    with engine.connect() as connection, connection.begin() as transaction:
        for name in jobs:
            job_id = defer(connection, name)
            row = connection.execute(
                sa.text(
                    "SELECT queue_name, lock, queueing_lock, args, scheduled_at "
                    "FROM procrastinate_jobs WHERE id = :id"
                ),
                {"id": job_id},
            ).one()
            reference = declared.tasks[name].configure().job
            assert tuple(row) == (
                reference.queue,
                reference.lock,
                reference.queueing_lock,
                {},
                None,
            ), name
        transaction.rollback()


async def test_at_a_time_is_the_tick_and_holds_no_queueing_lock(
    declared: App, engine: Engine
) -> None:
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    with engine.begin() as connection:
        later = defer(connection, "booking_reminders", at=at)
        # The schedule's run now is not held back by the one waiting for later.
        now = defer(connection, "booking_reminders")
        mine = defer(connection, "booking_reminders", at=at, queueing_lock="b42")
        again = defer(connection, "booking_reminders", at=at, queueing_lock="b42")
    rows = {job["id"]: job for job in _jobs(engine)}
    assert len(rows) == 3 and mine == again and len({later, now, mine}) == 3
    assert rows[later]["scheduled_at"] == at
    assert rows[later]["args"] == {"timestamp": int(at.timestamp())}
    assert rows[later]["queueing_lock"] is None
    assert rows[now]["queueing_lock"] == "booking_reminders"
    assert rows[now]["args"] == {}
    assert rows[mine]["queueing_lock"] == "b42"


# --- concurrent callers ------------------------------------------------------------


def _blocked(db_url: str, pid: int, timeout: float = 10.0) -> None:
    """Wait until backend ``pid`` waits on a lock."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(db_url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                [pid],
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited on a lock")


def _in_thread(work: Callable[[], Any]) -> Callable[[], Any]:
    """Start ``work`` in a thread; the returned call joins it and gives its result."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work()
        except BaseException as error:
            result["error"] = error

    thread = threading.Thread(target=run)
    thread.start()

    def join() -> Any:
        thread.join(30)
        assert not thread.is_alive()
        if "error" in result:
            raise result["error"]
        return result["value"]

    return join


async def test_concurrent_callers_with_one_queueing_lock_make_one_job(
    declared: App, db_url: str, engine: Engine
) -> None:
    with psycopg.connect(db_url) as first, psycopg.connect(db_url) as second:
        first_id = defer(first, JOB)
        pid = second.info.backend_pid
        joined = _in_thread(lambda: defer(second, JOB))
        _blocked(db_url, pid)  # on the first caller's uncommitted row
        first.commit()
        assert joined() == first_id
        second.commit()
    assert [job["id"] for job in _jobs(engine)] == [first_id]


async def test_many_callers_at_once_make_one_job(declared: App, db_url: str) -> None:
    barrier = threading.Barrier(8)

    def caller() -> int:
        with psycopg.connect(db_url) as connection:
            barrier.wait()
            connection.execute(CALLER_ROW)
            return defer(connection, JOB, queueing_lock="one")

    joins = [_in_thread(caller) for _ in range(8)]
    ids = {join() for join in joins}
    with psycopg.connect(db_url) as connection:
        rows = connection.execute(
            "SELECT id FROM procrastinate_jobs WHERE queueing_lock = 'one'"
        ).fetchall()
        callers = connection.execute(
            "SELECT count(*) FROM error_log WHERE source = 'backend'"
        ).fetchone()[0]
    assert len(ids) == 1 and [row[0] for row in rows] == list(ids)
    assert callers == 8


def _fetch(db_url: str) -> int | None:
    """What a worker's fetch takes now (Procrastinate's own fetch function)."""
    with psycopg.connect(db_url, autocommit=True) as connection:
        worker = connection.execute(
            "INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id"
        ).fetchone()[0]
        return connection.execute(
            "SELECT id FROM procrastinate_fetch_job_v2(NULL, %s)", [worker]
        ).fetchone()[0]


async def test_a_waiting_job_joined_does_not_start_before_the_caller_commits(
    declared: App, db_url: str
) -> None:
    """A caller whose defer finds the job already waiting holds it until its own
    transaction ends: a run started meanwhile would not see the caller's data."""
    with psycopg.connect(db_url, autocommit=True) as connection:
        waiting = defer(connection, JOB)
    with psycopg.connect(db_url) as caller:
        caller.execute(CALLER_ROW)
        assert defer(caller, JOB) == waiting
        assert _fetch(db_url) is None
        caller.commit()
    assert _fetch(db_url) == waiting


async def test_a_waiting_job_that_starts_meanwhile_leaves_a_new_one(
    declared: App, db_url: str, engine: Engine
) -> None:
    """The waiting job is taken by a worker between the caller's insert and its
    look at that job: the caller's work needs a run after its commit, so a new job
    is deferred."""
    with psycopg.connect(db_url, autocommit=True) as connection:
        waiting = defer(connection, JOB)
    with psycopg.connect(db_url) as worker, psycopg.connect(db_url) as caller:
        worker.execute(
            "SELECT id FROM procrastinate_jobs WHERE id = %s FOR UPDATE", [waiting]
        )
        joined = _in_thread(lambda: defer(caller, JOB))
        _blocked(db_url, caller.info.backend_pid)
        worker.execute(
            "UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", [waiting]
        )
        worker.commit()
        new = joined()
        caller.commit()
    assert new != waiting
    assert [(job["id"], job["status"]) for job in _jobs(engine)] == [
        (waiting, "doing"),
        (new, "todo"),
    ]


async def test_a_snapshot_older_than_the_waiting_job_is_a_serialization_failure(
    declared: App, db_url: str
) -> None:
    """REPEATABLE READ: the job waiting under the lock came after the caller's
    snapshot; the caller retries its transaction, as for any such failure."""
    with psycopg.connect(db_url) as caller:
        caller.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        caller.execute("SELECT 1")  # the snapshot is taken
        with psycopg.connect(db_url, autocommit=True) as other:
            defer(other, JOB)
        with pytest.raises(psycopg.errors.SerializationFailure):
            defer(caller, JOB)


# --- every caller's connection ------------------------------------------------------


def _async_url(db_url: str) -> str:
    return "postgresql+psycopg://" + db_url.split("://", 1)[1]


@pytest.fixture
async def async_engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(_async_url(db_url))
    yield engine
    await engine.dispose()


def _sync_paths(engine: Engine, db_url: str) -> Iterator[tuple[str, Any]]:
    yield "session", lambda: Session(engine)
    yield "connection", engine.connect
    yield "psycopg", lambda: psycopg.connect(db_url)


@pytest.mark.parametrize("path", ["session", "connection", "psycopg"])
@pytest.mark.parametrize("commit", [True, False])
async def test_each_sync_caller_path(
    declared: App, engine: Engine, db_url: str, path: str, commit: bool
) -> None:
    with dict(_sync_paths(engine, db_url))[path]() as connection:
        if isinstance(connection, psycopg.Connection):
            connection.execute(CALLER_ROW)
        else:
            connection.execute(sa.text(CALLER_ROW))
        job_id = defer(connection, JOB)
        if commit:
            connection.commit()
        else:
            connection.rollback()
    jobs = _jobs(engine)
    assert [job["id"] for job in jobs] == ([job_id] if commit else [])
    assert _caller_rows(engine) == (1 if commit else 0)


@pytest.mark.parametrize("path", ["session", "connection", "psycopg"])
@pytest.mark.parametrize("commit", [True, False])
async def test_each_async_caller_path(
    declared: App,
    engine: Engine,
    async_engine: AsyncEngine,
    db_url: str,
    path: str,
    commit: bool,
) -> None:
    if path == "psycopg":
        connection: Any = await psycopg.AsyncConnection.connect(db_url)
        await connection.execute(CALLER_ROW)
    else:
        connection = (
            AsyncSession(async_engine)
            if path == "session"
            else await async_engine.connect()
        )
        await connection.execute(sa.text(CALLER_ROW))
    try:
        job_id = await defer_async(connection, JOB)
        if commit:
            await connection.commit()
        else:
            await connection.rollback()
    finally:
        await connection.close()
    assert [job["id"] for job in _jobs(engine)] == ([job_id] if commit else [])
    assert _caller_rows(engine) == (1 if commit else 0)


# --- refusals ------------------------------------------------------------------------

REFUSALS = [
    ("'no_such_job', '{}'", "P0002", "unknown job 'no_such_job': SELECT id FROM"),
    ("NULL, '{}'", "P0002", "unknown job NULL"),
    (
        "'selfcheck', '[]'",
        "22023",
        "must be a JSON object, e.g. '{}', not a JSON array",
    ),
    ("'selfcheck', '\"x\"'", "22023", "not a JSON string"),
    ("'selfcheck', 'null'", "22023", "not a JSON null"),
    ("'selfcheck', '{\"user\": 1}'", "22023", "takes no argument 'user'"),
    ("'selfcheck', '{\"timestamp\": \"x\"}'", "22023", "whole Unix seconds"),
    ("'selfcheck', '{\"timestamp\": 1.5}'", "22023", "whole Unix seconds"),
    ("'selfcheck', '{\"timestamp\": -3}'", "22023", "whole Unix seconds"),
]


@pytest.mark.parametrize(("call", "sqlstate", "message"), REFUSALS)
async def test_sql_refuses_unknown_jobs_and_bad_arguments(
    declared: App,
    db_url: str,
    engine: Engine,
    call: str,
    sqlstate: str,
    message: str,
) -> None:
    before = _state(engine)
    with psycopg.connect(db_url) as connection:
        connection.execute(CALLER_ROW)
        with pytest.raises(psycopg.Error) as refused:
            connection.execute(f"SELECT agnt_defer({call})")
    assert refused.value.sqlstate == sqlstate
    assert message in refused.value.diag.message_primary
    assert _state(engine) == before


async def test_a_job_the_deploy_dropped_is_refused(
    declared: App, engine: Engine
) -> None:
    from agnt_jobs.scheduler.bodies import BODIES
    from agnt_jobs.scheduler.tasks import make_task

    def gone(ctx: Any) -> dict[str, int]:
        return {}

    BODIES["test_gone"] = gone
    try:
        make_task(declared, "test_gone", gone)
        async with declared.open_async():
            await deploy.sync_table(declared)
        with engine.begin() as connection:
            defer(connection, "test_gone")
    finally:
        BODIES.pop("test_gone")
        declared.tasks.pop("test_gone")
    async with declared.open_async():
        await deploy.sync_table(declared)  # the next deploy has no test_gone
    with (
        pytest.raises(DeferRefused, match=r"^job 'test_gone' is not in the deployed"),
        engine.begin() as connection,
    ):
        defer(connection, "test_gone")


@pytest.mark.parametrize("path", ["session", "psycopg"])
async def test_python_refusal_is_one_line_and_the_caller_commits_nothing(
    declared: App, engine: Engine, db_url: str, path: str
) -> None:
    with dict(_sync_paths(engine, db_url))[path]() as connection:
        if isinstance(connection, psycopg.Connection):
            connection.execute(CALLER_ROW)
        else:
            connection.execute(sa.text(CALLER_ROW))
        with pytest.raises(DeferRefused) as refused:
            defer(connection, JOB, {"venue": 3})
        connection.rollback()
    assert str(refused.value) == (
        "job selfcheck takes no argument 'venue': its arguments are timestamp"
    )
    assert _caller_rows(engine) == 0 and _jobs(engine) == []


async def test_async_refusal(declared: App, async_engine: AsyncEngine) -> None:
    async with async_engine.connect() as connection:
        with pytest.raises(DeferRefused, match=r"^unknown job 'nope'"):
            await defer_async(connection, "nope")


async def test_a_worker_start_declares_every_job(declared: App, engine: Engine) -> None:
    with engine.connect() as connection:
        rows = {
            row.id: row
            for row in connection.execute(
                sa.text("SELECT * FROM declared_jobs WHERE removed_at IS NULL")
            )
        }
    assert "wiki_reconcile" in rows and "selfcheck" in rows
    assert not any(name.startswith(("builtin:", "procrastinate")) for name in rows)
    rescue = rows["rescue_stalled_jobs"]
    assert rescue.lock is None and rescue.queueing_lock == "rescue_stalled_jobs"
    assert rows["wiki_reconcile"].queue == declared.tasks["wiki_reconcile"].queue
    assert all(row.arguments == ["timestamp"] for row in rows.values())


async def test_gather_of_async_callers_make_one_job(
    declared: App, async_engine: AsyncEngine, engine: Engine
) -> None:
    async def caller() -> int:
        async with async_engine.begin() as connection:
            return await defer_async(connection, JOB)

    ids = await asyncio.gather(*(caller() for _ in range(5)))
    assert len(set(ids)) == 1
    assert [job["id"] for job in _jobs(engine)] == [ids[0]]


# --- inside a job --------------------------------------------------------------------


def _follow_up_body(
    fail_before_commit: bool = False,
) -> Callable[[Any], dict[str, int]]:
    """The pattern for a body whose work calls for another job: the defer is in
    the transaction of the work that causes it."""

    def body(ctx: Any) -> dict[str, int]:
        with ctx.engine.begin() as connection:
            claimed = connection.execute(
                sa.text(
                    "UPDATE error_log SET level = 'WARNING' "
                    "WHERE source = 'backend' AND level = 'ERROR'"
                )
            ).rowcount
            if claimed:
                defer(connection, JOB)
            if fail_before_commit:
                raise RuntimeError("cut off before the commit")
        return {"claimed": claimed}

    return body


async def test_a_body_defers_with_its_work_so_a_rerun_defers_nothing_more(
    declared: App, engine: Engine, env: Any
) -> None:
    from tests.support.jobs import context

    with engine.begin() as connection:
        connection.execute(sa.text(CALLER_ROW))
        connection.execute(sa.text(CALLER_ROW))
    ctx = context(engine, env)

    with pytest.raises(RuntimeError):
        _follow_up_body(fail_before_commit=True)(ctx)
    assert _jobs(engine) == []  # the work rolled back, and its defer with it

    assert _follow_up_body()(ctx) == {"claimed": 2}
    await _drain(declared)  # the follow-up ran
    assert [job["status"] for job in _jobs(engine, JOB)] == ["succeeded"]

    # Run again (a retry after a crash past the commit): its work is done, so
    # nothing is deferred again.
    assert _follow_up_body()(ctx) == {"claimed": 0}
    assert [job["status"] for job in _jobs(engine, JOB)] == ["succeeded"]


# --- the FastAPI example of docs/deferring.md ----------------------------------------


async def test_the_fastapi_example_commits_the_row_and_the_job_together(
    declared: App, engine: Engine, async_engine: AsyncEngine
) -> None:
    """docs/deferring.md's backend, on a table of ours in place of bookings."""
    import httpx
    from fastapi import Depends, FastAPI

    from agnt_jobs.models import ErrorLog

    sessions = async_sessionmaker(async_engine, expire_on_commit=False)
    api = FastAPI()

    async def session() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    @api.post("/bookings", status_code=201)
    async def create_booking(
        fail: bool = False, session: AsyncSession = Depends(session)
    ) -> dict[str, int]:
        async with session.begin():
            row = ErrorLog(source="backend", message="booking 42")
            session.add(row)
            await session.flush()
            await defer_async(session, JOB)
            if fail:
                raise RuntimeError("the handler failed after deferring")
        return {"id": row.id}

    transport = httpx.ASGITransport(app=api, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        failed = await client.post("/bookings", params={"fail": True})
        assert failed.status_code == 500
        assert _jobs(engine) == [] and _caller_rows(engine) == 0

        created = await client.post("/bookings")
        assert created.status_code == 201
    assert len(_jobs(engine)) == 1 and _caller_rows(engine) == 1
