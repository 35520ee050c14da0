"""The worker's LISTEN session (``SettingsConnector.listen_notify``): it hands on
every notification in order, and when its session is lost it connects and
listens again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import psycopg

from agnt_jobs import settings
from agnt_jobs.db.connector import LISTENER_NAME, SettingsConnector

CHANNEL = "agnt_test_listener"


def _listeners(db_url: str) -> list[int]:
    with psycopg.connect(db_url, autocommit=True) as server:
        return [
            row[0]
            for row in server.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                [LISTENER_NAME],
            ).fetchall()
        ]


async def _until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _send(db_url: str, first: int, count: int) -> None:
    """``count`` notifications numbered from ``first``, in one transaction."""
    with psycopg.connect(db_url, autocommit=True) as connection:
        connection.execute(
            "SELECT pg_notify(%s, g::text) FROM generate_series(%s::int, %s::int) AS g",
            (CHANNEL, first, first + count - 1),
        )


async def test_the_listener_hands_on_every_notification_and_listens_again_when_lost(
    db_url: str, env: settings.Settings
) -> None:
    connector = SettingsConnector()
    await connector.open_async()
    heard: list[int] = []

    async def on_notification(*, channel: str, payload: str) -> None:
        assert channel == CHANNEL
        heard.append(int(payload))

    listening = asyncio.create_task(
        connector.listen_notify(on_notification=on_notification, channels=[CHANNEL])
    )
    try:
        await _until(lambda: len(_listeners(db_url)) == 1)
        (first,) = _listeners(db_url)
        await asyncio.to_thread(_send, db_url, 1, 500)
        await _until(lambda: len(heard) == 500)
        assert heard == list(range(1, 501))

        with psycopg.connect(db_url, autocommit=True) as server:
            server.execute("SELECT pg_terminate_backend(%s)", [first])
        await _until(lambda: _listeners(db_url) not in ([], [first]))
        await asyncio.to_thread(_send, db_url, 501, 3)
        await _until(lambda: len(heard) == 503)
        assert heard[500:] == [501, 502, 503]
        assert not listening.done()
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await connector.close_async()


async def test_notifications_kept_while_the_listener_asked_the_server_are_handed_on(
    db_url: str, env: settings.Settings
) -> None:
    """A notification that reaches the listening session while it runs a query
    of its own (its ``SELECT 1``) is read with that query's answer and kept by
    psycopg, not left on the socket: the listener hands it on at once, not when
    the socket next has something to read or its timeout passes."""
    heard: list[str] = []

    async def on_notification(*, channel: str, payload: str) -> None:
        heard.append(payload)

    async with await psycopg.AsyncConnection.connect(
        db_url, autocommit=True
    ) as connection:
        await connection.execute(f"LISTEN {CHANNEL}")
        # Its own NOTIFY reaches the session with the statement's answer.
        await connection.execute(f"NOTIFY {CHANNEL}, 'kept'")
        listening = asyncio.create_task(
            SettingsConnector()._loop_notify(on_notification, connection, timeout=60)
        )
        try:
            await _until(lambda: heard == ["kept"], timeout=5)
            await asyncio.to_thread(_send, db_url, 7, 1)
            await _until(lambda: heard == ["kept", "7"], timeout=5)
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
