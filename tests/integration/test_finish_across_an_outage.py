"""A job that ends while its database is away: the worker keeps trying to record the
job's end and its run's end, through failure after failure, and records both when
the database comes back; an idle worker keeps looking for jobs through an outage
and runs the next one after it. The worker stays up throughout. A real worker in
this process, on the App's own connector; the database refuses every connection and
its sessions are ended, as Postgres does to a database that is being taken down."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Engine

from agnt_jobs.db import outage
from agnt_jobs.db.connector import SettingsConnector
from agnt_jobs.scheduler.bodies import BODIES, RunContext
from agnt_jobs.scheduler.history import record_run
from agnt_jobs.scheduler.tasks import make_task
from agnt_jobs.scheduler.worker import AgntApp, AgntWorker
from agnt_jobs.settings import Settings, get_settings
from tests.support.silent_proxy import SilentProxy
from tests.support.waiting import until

# Failures of each record the test waits for before the database comes back: more
# than the one retry a helper that gives up early would allow.
FAILURES = 4


@pytest.fixture
def quick_retries(env: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AGNT_DB_RETRY_INITIAL_SECONDS", "0.05")
    monkeypatch.setenv("AGNT_DB_RETRY_MAX_SECONDS", "0.2")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _database_down(server_url: str, name: str, down: bool) -> None:
    """Refuse (or accept again) every connection to ``name``; going down ends its
    sessions too."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(name), sql.SQL("false" if down else "true")
            )
        )
        if down:
            admin.execute(
                # Waits (up to 5 s) for each session to have ended.
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )


def _one(engine: Engine, query: str, **params: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(sa.text(query), params).one()


@dataclass
class Running:
    """A worker running in this process, and the failures it reported, by loop."""

    app: AgntApp
    worker: AgntWorker
    task: asyncio.Task[None]
    failures: Counter[str]
    started: threading.Event
    release: threading.Event
    server_url: str
    database: str
    proxy: SilentProxy | None

    async def down(self, down: bool) -> None:
        """Take the worker's database away, or give it back."""
        if self.proxy is None:
            await asyncio.to_thread(
                _database_down, self.server_url, self.database, down
            )
        elif down:
            self.proxy.pause()
        else:
            self.proxy.resume()


@pytest.fixture
async def running(
    request: pytest.FixtureRequest,
    server_url: str,
    db_url: str,
    engine: Engine,
    quick_retries: None,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Running]:
    """A worker on the App's own connector, its job ``test_hold`` waiting for
    ``release``; ``request.param`` is (with the run history middleware, how the
    database goes away: "refused", "silent" or "cancels lost"). A silent database
    is one behind a proxy that stops forwarding: connections stay open and nothing
    answers. Behind "cancels lost" the same proxy forwards all but the cancel
    requests the worker sends for statements it gave up on."""
    history, kind = request.param
    proxy = None
    if kind in ("silent", "cancels lost"):
        proxy = SilentProxy.before(db_url)
        proxy.lose_cancels = kind == "cancels lost"
        monkeypatch.setenv("AGNT_DATABASE_URL", proxy.url(db_url))
        # Queries unanswered for half of this are given up on: 2.5 s.
        monkeypatch.setenv("AGNT_DB_SILENT_AFTER_SECONDS", "5")
        get_settings.cache_clear()
    started, release = threading.Event(), threading.Event()

    def hold(ctx: RunContext) -> dict[str, int]:
        started.set()
        release.wait(30)
        return {"held": 1}

    # A pool that gives up on a connection within half a second: each try of a
    # record then fails fast while the database is away.
    app = AgntApp(
        connector=SettingsConnector(timeout=0.5),
        worker_defaults={
            "worker_middleware": [record_run] if history else [],
            "delete_jobs": "never",
        },
    )
    BODIES["test_hold"] = hold
    make_task(app, "test_hold", hold)
    name = str(psycopg.conninfo.conninfo_to_dict(db_url)["dbname"])
    try:
        async with app.open_async():
            worker = app._worker(
                install_signal_handlers=False,
                concurrency=1,
                fetch_job_polling_interval=0.2,
            )
            assert isinstance(worker, AgntWorker)
            failures: Counter[str] = Counter()
            report = worker.outage.lost

            def counted(where: str, error: BaseException) -> None:
                failures[where] += 1
                report(where, error)

            worker.outage.lost = counted  # type: ignore[method-assign]
            task = asyncio.create_task(worker.run())
            state = Running(
                app, worker, task, failures, started, release, server_url, name, proxy
            )
            try:
                yield state
                assert not task.done(), task
            finally:
                release.set()
                await state.down(False)
                worker.stop()
                await asyncio.gather(task, return_exceptions=True)
    finally:
        BODIES.pop("test_hold")
        if proxy is not None:
            proxy.stop()


def _status(engine: Engine, job_id: int) -> str:
    return str(
        _one(
            engine, "SELECT status FROM procrastinate_jobs WHERE id = :id", id=job_id
        ).status
    )


@pytest.mark.parametrize(
    "running",
    [(True, "refused"), (False, "refused"), (True, "silent")],
    ids=["run history, refused", "no run history, refused", "run history, silent"],
    indirect=True,
)
async def test_a_job_ending_while_the_database_is_away_is_recorded_when_it_returns(
    running: Running, engine: Engine
) -> None:
    """The run's end goes with the job's, in the one statement the worker retries."""
    history = running.worker.worker_middleware == [record_run]
    job_id = await running.app.tasks["test_hold"].defer_async()
    assert await until(running.started.is_set, 20), "the job never started"
    await running.down(True)
    running.release.set()
    assert await until(lambda: running.failures["finish_job"] >= FAILURES, 30), (
        f"the worker stopped trying: {dict(running.failures)}"
    )
    assert not running.task.done(), running.task
    await running.down(False)

    assert await until(lambda: _status(engine, job_id) == "succeeded", 20), (
        "the job's end was never recorded"
    )
    if history:
        run = _one(
            engine,
            "SELECT status, finished_at, result FROM job_runs WHERE job_id = :id",
            id=job_id,
        )
        assert (run.status, run.result) == ("succeeded", {"held": 1})
        assert run.finished_at is not None


@pytest.mark.parametrize("running", [(True, "refused")], ids=[""], indirect=True)
async def test_an_idle_worker_looks_for_jobs_through_an_outage_and_runs_the_next(
    running: Running, engine: Engine
) -> None:
    running.release.set()
    assert await until(lambda: running.worker.worker_id is not None, 20)
    await running.down(True)
    assert await until(lambda: running.failures["fetch"] >= FAILURES, 30), (
        f"the worker stopped looking for jobs: {dict(running.failures)}"
    )
    assert not running.task.done(), running.task
    await running.down(False)
    job_id = await running.app.tasks["test_hold"].defer_async()
    assert await until(lambda: _status(engine, job_id) == "succeeded", 20), (
        f"the job after the outage never ran: {_status(engine, job_id)}"
    )


@pytest.mark.parametrize("running", [(True, "silent")], ids=[""], indirect=True)
async def test_a_job_claimed_by_a_claim_whose_answer_was_lost_is_given_back(
    running: Running, engine: Engine
) -> None:
    """The database goes silent while the idle worker's claim is on its way; the
    worker gives up on the answer; a job arrives; answers flow again, and the held
    claim reaches the server late and takes the job for this worker, which never
    hears of it. The worker gives such a job back before its next claim, and it
    runs: left alone it would stay 'doing' under a living worker, which the rescue
    never takes."""
    running.release.set()
    assert await until(lambda: running.worker.worker_id is not None, 20)
    unanswered: list[BaseException] = []
    report = running.worker.outage.lost

    def noted(where: str, error: BaseException) -> None:
        if where == "fetch" and isinstance(error, outage.NoAnswer):
            unanswered.append(error)
        report(where, error)

    running.worker.outage.lost = noted  # type: ignore[method-assign]
    # Wanted: a claim sent while the proxy is silent, held, and given up on
    # (NoAnswer). A claim that found no connection (the pool's check or connect
    # timed out) was never sent, and one sent just before the silence ran at once
    # (its answer held): then the database answers again and goes silent anew.
    proxy = running.proxy
    assert proxy is not None
    for _ in range(10):
        held = proxy.held_requests
        await running.down(True)
        if await until(lambda: bool(unanswered), 10) and proxy.held_requests > held:
            break
        unanswered.clear()
        await running.down(False)
        await asyncio.sleep(0.5)
    assert unanswered, f"no claim was held: {dict(running.failures)}"
    with engine.begin() as connection:
        job_id = connection.execute(
            sa.text(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args) "
                "VALUES ('default', 'test_hold', '{}') RETURNING id"
            )
        ).scalar_one()
    await running.down(False)

    await _given_back_and_run(engine, job_id)


@pytest.mark.parametrize("running", [(True, "cancels lost")], ids=[""], indirect=True)
async def test_a_claim_that_runs_on_past_its_deadline_leaves_no_job_behind(
    running: Running, engine: Engine, db_url: str
) -> None:
    """A claim the server holds past the worker's deadline (here behind a lock the
    test holds on the jobs table), whose cancel is lost on its way (as PgBouncer
    drops one for a client already gone), runs on after the worker gave up on its
    answer, and takes a job when the lock goes. The worker gives its claims up
    before it gives back what they took, and a give-up does not go through while
    such a claim is under way: the job is given back and runs. A give-back that
    ran while the claim still waited would have found nothing, and the job would
    stay 'doing' under a living worker, which the rescue never takes."""
    running.release.set()
    assert await until(lambda: running.worker.worker_id is not None, 20)
    proxy = running.proxy
    assert proxy is not None
    with psycopg.connect(db_url) as holding:
        holding.execute("LOCK TABLE procrastinate_jobs IN SHARE MODE")
        row = holding.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args) "
            "VALUES ('default', 'test_hold', '{}') RETURNING id"
        ).fetchone()
        assert row is not None
        job_id = int(row[0])
        # The idle worker's next poll sends a claim, which waits for the lock.
        assert await until(
            lambda: running.failures["fetch"] > 0 and proxy.lost_cancels > 0, 20
        ), f"no claim was given up on: {dict(running.failures)}"
        # Time for the worker to look for what the claim took, and claim anew.
        await asyncio.sleep(1)
    # The lock goes and the job comes at once: the claim given up on takes it.

    await _given_back_and_run(engine, job_id)


async def _given_back_and_run(engine: Engine, job_id: int) -> None:
    """The job ran: its last run succeeded, every run before it was stopped by
    the give-back."""
    assert await until(lambda: _status(engine, job_id) == "succeeded", 30), (
        f"the job is left {_status(engine, job_id)}"
    )
    runs = [
        tuple(row)
        for row in _all(
            engine,
            "SELECT attempt, status FROM job_runs WHERE job_id = :id ORDER BY 1",
            id=job_id,
        )
    ]
    assert runs[-1][1] == "succeeded"
    assert all(status == "stopped" for _, status in runs[:-1])


def _all(engine: Engine, query: str, **params: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(sa.text(query), params))
