"""A worker's probes: /livez while its loops run, /readyz while the database also
answers at the code's revision; served by a real worker on a port of its own."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from procrastinate import App, PsycopgConnector

from agnt_jobs import settings
from agnt_jobs.scheduler import probes
from agnt_jobs.scheduler.probes import WorkerProbes
from agnt_jobs.scheduler.worker import WorkerFailed
from tests.support.silent_proxy import SilentProxy


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _State:
    def __init__(self) -> None:
        self.failure: str | None = None
        self.stopping = False


@contextlib.asynccontextmanager
async def _serving(
    connector: PsycopgConnector, loops: list[asyncio.Task[Any]], state: _State
) -> AsyncIterator[httpx.AsyncClient]:
    probe = WorkerProbes(
        loops,
        failure=lambda: state.failure,
        stopping=lambda: state.stopping,
        query_one=connector.execute_query_one_async,
    )
    port = _free_port()
    server = asyncio.create_task(probe.serve("127.0.0.1", port))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(100):
            with contextlib.suppress(httpx.ConnectError):
                await client.get("/livez")
                break
            await asyncio.sleep(0.02)
        try:
            yield client
        finally:
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server


async def _forever() -> None:
    await asyncio.Event().wait()


@contextlib.asynccontextmanager
async def _opened(conninfo: str) -> AsyncIterator[PsycopgConnector]:
    connector = PsycopgConnector(conninfo=conninfo)
    await connector.open_async()
    try:
        yield connector
    finally:
        await connector.close_async()


async def test_a_running_worker_on_a_current_database_is_live_and_ready(
    db_url: str,
) -> None:
    loop = asyncio.create_task(_forever(), name="heartbeat")
    async with (
        _opened(db_url) as connector,
        _serving(connector, [loop], _State()) as client,
    ):
        live, ready = await client.get("/livez"), await client.get("/readyz")
        head = await client.head("/readyz")
        missing = await client.get("/metrics")
        posted = await client.post("/livez")
    loop.cancel()
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
    assert ready.headers["cache-control"] == "no-store"
    assert (head.status_code, head.content) == (200, b"")
    assert missing.status_code == 404
    assert posted.status_code == 405


async def test_an_ended_loop_or_a_failing_worker_is_not_live(db_url: str) -> None:
    heartbeat = asyncio.create_task(_forever(), name="heartbeat")
    deferrer = asyncio.create_task(asyncio.sleep(0), name="deferrer")
    await deferrer
    state = _State()
    async with (
        _opened(db_url) as connector,
        _serving(connector, [heartbeat, deferrer], state) as client,
    ):
        ended = await client.get("/livez")
        not_ready = await client.get("/readyz")
        deferrer_only = [heartbeat]
        heartbeat.cancel()
        state.failure = "deferrer failed: RuntimeError('boom')"
        failing = await client.get("/livez")
    assert deferrer_only
    assert ended.status_code == 503
    assert ended.json()["reason"] == "the worker's loops ended: deferrer"
    assert not_ready.status_code == 503
    assert failing.status_code == 503
    assert "deferrer failed" in failing.json()["reason"]


async def test_a_stopping_worker_is_live_but_not_ready(db_url: str) -> None:
    loop = asyncio.create_task(_forever(), name="heartbeat")
    state = _State()
    state.stopping = True
    async with (
        _opened(db_url) as connector,
        _serving(connector, [loop], state) as client,
    ):
        live, ready = await client.get("/livez"), await client.get("/readyz")
    loop.cancel()
    assert live.status_code == 200
    assert (ready.status_code, ready.json()["reason"]) == (
        503,
        "the worker is stopping",
    )


async def test_a_database_behind_the_code_is_not_ready(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0001'")
    loop = asyncio.create_task(_forever(), name="heartbeat")
    async with (
        _opened(db_url) as connector,
        _serving(connector, [loop], _State()) as client,
    ):
        live, ready = await client.get("/livez"), await client.get("/readyz")
    loop.cancel()
    assert live.status_code == 200
    assert ready.status_code == 503
    assert "is at revision 0001" in ready.json()["reason"]
    assert "run 'agnt-jobs db upgrade'" in ready.json()["reason"]


async def test_a_lost_database_is_not_ready_and_does_not_make_the_worker_dead(
    db_url: str,
) -> None:
    proxy = SilentProxy.before(db_url)
    loop = asyncio.create_task(_forever(), name="heartbeat")
    try:
        async with (
            _opened(proxy.url(db_url)) as connector,
            _serving(connector, [loop], _State()) as client,
        ):
            before = await client.get("/readyz")
            proxy.stop()  # every connection closed, new ones refused
            live, ready = await client.get("/livez"), await client.get("/readyz")
    finally:
        proxy.stop()
        loop.cancel()
    assert before.status_code == 200
    assert live.status_code == 200
    assert ready.status_code == 503
    # Refused at once, or still waited for by the pool when the probe gives up.
    assert ready.json()["reason"].startswith(
        ("the database cannot be reached: ", "the database did not answer")
    )


async def test_a_silent_database_is_not_ready_within_the_probe_timeout(
    db_url: str,
) -> None:
    proxy = SilentProxy.before(db_url)
    loop = asyncio.create_task(_forever(), name="heartbeat")
    try:
        async with (
            _opened(proxy.url(db_url)) as connector,
            _serving(connector, [loop], _State()) as client,
        ):
            proxy.pause()
            started = time.monotonic()
            ready = await client.get("/readyz", timeout=10)
            took = time.monotonic() - started
            live = await client.get("/livez")
            proxy.resume()
    finally:
        proxy.stop()
        loop.cancel()
    assert ready.status_code == 503
    assert ready.json()["reason"] == "the database did not answer within 2 s"
    assert took < probes.READY_TIMEOUT_SECONDS + 2
    assert live.status_code == 200


async def test_a_client_that_never_finishes_its_request_blocks_no_other(
    db_url: str,
) -> None:
    loop = asyncio.create_task(_forever(), name="heartbeat")
    async with (
        _opened(db_url) as connector,
        _serving(connector, [loop], _State()) as client,
    ):
        port = client.base_url.port
        _, idle = await asyncio.open_connection("127.0.0.1", port)
        idle.write(b"GET /livez HTTP/1.1\r\n")
        _, huge = await asyncio.open_connection("127.0.0.1", port)
        huge.write(b"GET /livez HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
        live = await client.get("/livez")
        idle.close()
        huge.close()
    loop.cancel()
    assert live.status_code == 200


def _worker_settings(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    monkeypatch.setenv("AGNT_PROBE_PORT", str(port))
    monkeypatch.setenv("AGNT_PROBE_HOST", "127.0.0.1")
    settings.get_settings.cache_clear()


async def test_a_worker_serves_its_probes_while_it_runs(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()
    _worker_settings(monkeypatch, port)
    async with app.open_async():
        worker = asyncio.create_task(
            app.run_worker_async(install_signal_handlers=False)
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(200):
                with contextlib.suppress(httpx.ConnectError):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            live, ready = await client.get("/livez"), await client.get("/readyz")
            worker.cancel()  # Procrastinate's graceful stop
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            with pytest.raises(httpx.ConnectError):
                await client.get("/livez")
    assert live.status_code == 200
    assert ready.status_code == 200


async def test_a_worker_whose_probe_port_is_taken_fails_instead_of_running_blind(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        _worker_settings(monkeypatch, taken.getsockname()[1])
        async with app.open_async():
            with pytest.raises(WorkerFailed, match="probes failed"):
                await asyncio.wait_for(
                    app.run_worker_async(install_signal_handlers=False), 30
                )
