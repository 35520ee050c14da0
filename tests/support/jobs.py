"""Running job bodies in tests: a context at a chosen instant, a count of the
transactions a run commits or of the rows each claim took, two copies of a job
started at once, and rows held locked by another transaction while a job runs
beside it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler.bodies import RunContext
from agnt_jobs.settings import Settings


def context(
    engine: Engine,
    settings: Settings,
    now: datetime | None = None,
    tick: datetime | None = None,
    **overrides: Any,
) -> RunContext:
    """A run at ``now`` (default: the wall clock) for ``tick`` (default: ``now``),
    with settings ``overrides`` (``job_chunk_size=10``)."""
    now = now or datetime.now(UTC)
    if overrides:
        settings = settings.model_copy(update=overrides)
    return RunContext(engine=engine, settings=settings, tick=tick or now, now=now)


@contextlib.contextmanager
def count_commits(engine: Engine) -> Iterator[list[int]]:
    """Counts the transactions committed on ``engine`` inside the block."""
    commits = [0]

    def on_commit(connection: Any) -> None:
        commits[0] += 1

    event.listen(engine, "commit", on_commit)
    try:
        yield commits
    finally:
        event.remove(engine, "commit", on_commit)


@contextlib.contextmanager
def executions(
    engine: Engine, statement: sa.TextClause
) -> Iterator[list[tuple[dict[str, Any], int]]]:
    """Each execution of ``statement`` on ``engine`` inside the block, in order:
    its parameters and how many rows it returned or touched (a claim's size)."""
    seen: list[tuple[dict[str, Any], int]] = []

    def after(
        connection: Any,
        cursor: Any,
        sql: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if context is not None and context.invoked_statement is statement:
            seen.append((dict(parameters), cursor.rowcount))

    event.listen(engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(engine, "after_cursor_execute", after)


def run_concurrently(body: Callable[[], Any], copies: int = 2) -> list[Any]:
    """Start ``copies`` of ``body`` together (a barrier), return their results;
    an exception in any copy is raised."""
    barrier = threading.Barrier(copies)
    results: list[Any] = [None] * copies
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = body()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@contextlib.contextmanager
def rows_locked(engine: Engine, query: str, **params: Any) -> Iterator[list[Any]]:
    """Hold the row locks ``query`` (a ``SELECT ... FOR UPDATE``) takes, in a
    transaction left open for the block, as a slow copy of the job or the backend
    editing those rows would; yields the first column of the locked rows."""
    with engine.connect() as connection, connection.begin():
        yield list(connection.execute(sa.text(query), params).scalars())


def run_while_rows_held(
    engine: Engine, query: str, run: Callable[[], Mapping[str, Any]], **params: Any
) -> tuple[list[Any], Mapping[str, Any]]:
    """Run a job (``run``) in a thread while ``query`` holds its rows (as
    ``rows_locked``), and assert that it ends while they are still held, instead
    of waiting for their holder: the ids held and the job's result."""
    finished = threading.Event()
    result: dict[str, Any] = {}

    def job() -> None:
        result.update(run())
        finished.set()

    with rows_locked(engine, query, **params) as held:
        runner = threading.Thread(target=job)
        runner.start()
        ended_while_held = finished.wait(timeout=20)
    runner.join()
    assert ended_while_held, "the job waited for the rows another transaction held"
    return held, result


@contextlib.contextmanager
def impatient(engine: Engine, lock_timeout_ms: int = 2000) -> Iterator[Engine]:
    """An engine on the same database whose statements give up after waiting
    ``lock_timeout_ms`` for a lock (LockNotAvailable): a job run on it that queues
    behind another transaction's row locks fails instead of hanging the test."""
    waiting = sa.create_engine(
        engine.url, connect_args={"options": f"-c lock_timeout={lock_timeout_ms}"}
    )
    try:
        yield waiting
    finally:
        waiting.dispose()


def assert_skips_rows_locked_elsewhere(
    engine: Engine,
    run: Callable[[Engine], Mapping[str, Any]],
    key: str,
    held_query: str,
    due_query: str,
    due: int,
) -> None:
    """While another transaction holds some of the ``due`` rows (``held_query``, a
    ``SELECT id ... FOR UPDATE``), a run of the job (``run(engine)``, whose count of
    rows changed is ``result[key]``) changes every other due row and ends instead of
    waiting: it runs on an engine whose lock waits time out. The rows still due
    (``due_query``: ``SELECT array_agg(id ORDER BY id) ...``) are exactly the held
    ones, and a run after the lock is released takes them."""
    with impatient(engine) as waiting:
        with rows_locked(engine, held_query) as held:
            assert 0 < len(held) < due
            assert run(waiting)[key] == due - len(held)
            with engine.connect() as connection:
                assert connection.execute(sa.text(due_query)).scalar() == held
        assert run(waiting)[key] == len(held)
