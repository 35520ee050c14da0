"""A job that ends while its database is away: the worker keeps trying to record the
job's end and its run's end, through failure after failure, and records both when
the database comes back; the worker itself stays up. A real worker in this process,
on the App's own connector; the database refuses every connection and its sessions
are ended, as Postgres does to a database that is being taken down."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Engine

from agnt_jobs.db.connector import SettingsConnector
from agnt_jobs.scheduler.bodies import BODIES, RunContext
from agnt_jobs.scheduler.history import record_run
from agnt_jobs.scheduler.tasks import make_task
from agnt_jobs.scheduler.worker import AgntApp, AgntWorker
from agnt_jobs.settings import Settings, get_settings
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


@pytest.mark.parametrize(
    "history",
    [True, False],
    ids=["run history, then the job's end", "the job's end, no run history"],
)
async def test_a_job_ending_while_the_database_is_away_is_recorded_when_it_returns(
    server_url: str, db_url: str, engine: Engine, quick_retries: None, history: bool
) -> None:
    """With the run history, its end is the first record the worker retries (the
    job's end waits behind it); without, the job's end is."""
    name = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
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
    task = make_task(app, "test_hold", hold)
    async with app.open_async():
        job_id = await task.defer_async()
        worker = app._worker(install_signal_handlers=False, concurrency=1)
        assert isinstance(worker, AgntWorker)
        failures: Counter[str] = Counter()
        report = worker.outage.lost

        def counted(where: str, error: BaseException) -> None:
            failures[where] += 1
            report(where, error)

        worker.outage.lost = counted  # type: ignore[method-assign]
        running = asyncio.create_task(worker.run())
        try:
            assert await until(started.is_set, 20), "the job never started"
            await asyncio.to_thread(_database_down, server_url, name, True)
            release.set()
            retried = "run_history" if history else "finish_job"
            assert await until(lambda: failures[retried] >= FAILURES, 30), (
                f"the worker stopped trying: {dict(failures)}"
            )
            assert not running.done(), running
            await asyncio.to_thread(_database_down, server_url, name, False)

            def ended() -> bool:
                job = _one(
                    engine,
                    "SELECT status FROM procrastinate_jobs WHERE id = :id",
                    id=job_id,
                )
                return bool(job.status == "succeeded")

            assert await until(ended, 20), "the job's end was never recorded"
            assert not running.done(), running
            if not history:
                return
            run = _one(
                engine,
                "SELECT status, finished_at, result FROM job_runs WHERE job_id = :id",
                id=job_id,
            )
            assert (run.status, run.result) == ("succeeded", {"held": 1})
            assert run.finished_at is not None
        finally:
            release.set()
            await asyncio.to_thread(_database_down, server_url, name, False)
            worker.stop()
            await asyncio.gather(running, return_exceptions=True)
            BODIES.pop("test_hold")
            app.tasks.pop("test_hold")
