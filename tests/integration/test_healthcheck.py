"""``agnt-jobs healthcheck``: the probes' answers from the heartbeat row of this
host's worker, for exec probes; a real worker runs in this process, the command in
another, as an exec probe runs beside a worker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from procrastinate import App

from agnt_jobs.settings.worker import WorkerSettings

BIN = Path(sys.executable).parent


async def _healthcheck(url: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "AGNT_DATABASE_URL": url}
    process = await asyncio.create_subprocess_exec(
        BIN / "agnt-jobs",
        "healthcheck",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    said = (out + err).decode()
    assert said.count("\n") == 1, said
    return process.returncode, said.strip()


@contextlib.asynccontextmanager
async def _worker_running(app: App, db_url: str) -> AsyncIterator[int]:
    """A worker of this host, until the block ends; yields its id once it has
    recorded itself. It beats once, at start: a test that ages the heartbeat
    must not see the next beat undo it while the probe's process starts."""
    async with app.open_async():
        worker = asyncio.create_task(
            app.run_worker_async(
                install_signal_handlers=False,
                update_heartbeat_interval=3600,
                # Its own stall timeout past two beats: a worker whose beats
                # could never come in time is fenced and claims nothing.
                stalled_worker_timeout=4 * 3600,
            )
        )
        try:
            for _ in range(200):
                with psycopg.connect(db_url) as connection:
                    row = connection.execute(
                        "SELECT worker_id FROM schedule_workers WHERE hostname = %s",
                        [socket.gethostname()],
                    ).fetchone()
                if row is not None:
                    break
                await asyncio.sleep(0.05)
            assert row is not None, "the worker never recorded itself"
            yield row[0]
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker


async def test_no_worker_on_this_host_is_not_ready_nor_live(db_url: str) -> None:
    code, said = await _healthcheck(db_url)
    assert code == 1
    host = socket.gethostname()
    assert said == f"agnt-jobs: not ready: no worker of host {host} is registered"
    assert (await _healthcheck(db_url, "--live"))[0] == 1


async def test_a_running_worker_is_ready_and_live(app: App, db_url: str) -> None:
    async with _worker_running(app, db_url) as worker_id:
        ready = await _healthcheck(db_url)
        live = await _healthcheck(db_url, "--live")
    host = socket.gethostname()
    assert ready[0] == 0
    assert ready[1].startswith(f"ready: worker {worker_id} of host {host}, heartbeat ")
    assert live[0] == 0
    assert live[1].startswith(f"live: worker {worker_id} of host {host}")


async def test_a_worker_whose_heartbeat_stalled_is_neither(
    app: App, db_url: str
) -> None:
    async with _worker_running(app, db_url) as worker_id:
        with psycopg.connect(db_url, autocommit=True) as connection:
            # As a worker whose loops are stuck leaves its row: the next beat
            # would set it back, so the check runs before it comes.
            connection.execute(
                "UPDATE procrastinate_workers"
                " SET last_heartbeat = now() - interval '1 hour' WHERE id = %s",
                [worker_id],
            )
        ready = await _healthcheck(db_url)
        live = await _healthcheck(db_url, "--live")
    assert ready[0] == live[0] == 1
    assert re.search(r"sent its last heartbeat 36\d\d s ago", ready[1])
    stalled = WorkerSettings.model_fields["stalled_worker_seconds"].default
    assert f"AGNT_STALLED_WORKER_SECONDS={stalled:g}" in live[1]


async def test_a_schema_behind_the_code_is_live_but_not_ready(
    app: App, db_url: str
) -> None:
    async with _worker_running(app, db_url):
        with psycopg.connect(db_url, autocommit=True) as connection:
            connection.execute("UPDATE alembic_version SET version_num = '0001'")
        ready = await _healthcheck(db_url)
        live = await _healthcheck(db_url, "--live")
    assert ready[0] == 1
    assert "is at revision 0001" in ready[1]
    assert live[0] == 0


async def test_a_database_that_cannot_be_reached_is_not_ready_and_not_judged_live(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        gone = f"postgresql://postgres@127.0.0.1:{closed.getsockname()[1]}/agnt"
    ready = await _healthcheck(gone)
    live = await _healthcheck(gone, "--live")
    assert ready[0] == 1
    assert ready[1].startswith("agnt-jobs: not ready: the database cannot be reached")
    assert live[0] == 0
    assert live[1].startswith("live: not judged, the database cannot be reached")
