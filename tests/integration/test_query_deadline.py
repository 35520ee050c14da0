"""The worker's query deadline: a query the database does not answer in time ends
with ``NoAnswer`` at once, whether the database went silent (a proxy that forwards
nothing) or is alive and slow (its statement is then cancelled on the server too),
and a pool discards the connection it was sent on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import psycopg
import pytest

from agnt_jobs.db import connector, outage
from agnt_jobs.db.connector import autocommit_pool
from agnt_jobs.settings import get_settings
from tests.support.silent_proxy import SilentProxy
from tests.support.waiting import until

DEADLINE = 0.5
# The pool's deadline: half of the smallest AGNT_DB_SILENT_AFTER_SECONDS allowed.
SILENT_AFTER = 5
POOL_DEADLINE = SILENT_AFTER / 2


@pytest.fixture
def proxy(db_url: str) -> Iterator[SilentProxy]:
    proxy = SilentProxy.before(db_url)
    try:
        yield proxy
    finally:
        proxy.stop()


async def test_a_silent_database_is_given_up_on_at_the_deadline(
    db_url: str, proxy: SilentProxy
) -> None:
    async with await psycopg.AsyncConnection.connect(
        proxy.url(db_url), autocommit=True
    ) as connection:
        with outage.answered_within(connection, DEADLINE):
            await connection.execute("SELECT 1")
        proxy.pause()
        started = time.monotonic()
        with (
            pytest.raises(outage.NoAnswer),
            outage.answered_within(connection, DEADLINE),
        ):
            # wait_for: without the deadline the test fails instead of hanging.
            await asyncio.wait_for(connection.execute("SELECT 1"), 20)
        # Not the 10 s psycopg takes when the waiting task is cancelled instead.
        assert time.monotonic() - started < DEADLINE + 1.5
        assert connection.broken or connection.closed
        assert outage.is_connection_lost(outage.NoAnswer("x"))


async def test_a_slow_statement_is_cancelled_on_the_server(db_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(
        db_url, autocommit=True
    ) as connection:
        pid = connection.info.backend_pid
        started = time.monotonic()
        with (
            pytest.raises(outage.NoAnswer),
            outage.answered_within(connection, DEADLINE),
        ):
            await connection.execute("SELECT pg_sleep(60)")
        assert time.monotonic() - started < DEADLINE + 1.5

    def sleeping() -> bool:
        with psycopg.connect(db_url, autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE pid = %s AND state = 'active'",
                [pid],
            ).fetchone()
        return bool(row and row[0])

    # The backend does not notice its client gone while it sleeps: only the
    # cancel request stops the statement.
    assert await until(lambda: not sleeping(), 5)


async def test_an_answered_query_is_not_touched(db_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(
        db_url, autocommit=True
    ) as connection:
        for _ in range(3):
            with outage.answered_within(connection, DEADLINE):
                await connection.execute("SELECT 1")
            await asyncio.sleep(DEADLINE)
        assert not connection.broken
        await connection.execute("SELECT 1")


async def test_the_pool_bounds_each_lent_connection_and_discards_it(
    db_url: str, proxy: SilentProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGNT_DB_SILENT_AFTER_SECONDS", str(SILENT_AFTER))
    get_settings.cache_clear()
    pool = autocommit_pool(
        conninfo=proxy.url(db_url), min_size=1, max_size=1, open=False
    )
    try:
        await pool.open(wait=True)
        async with pool.connection() as connection:
            await connection.execute("SELECT 1")
        proxy.pause()
        started = time.monotonic()
        with pytest.raises(Exception) as raised:
            async with pool.connection() as connection:
                await connection.execute("SELECT 1")
        # The query (on a connection that just answered) or the pool's check (on
        # one idle for longer) gives up at the deadline, half the setting; a wait
        # for another connection ends at the same bound.
        assert outage.is_connection_lost(raised.value), raised.value
        assert time.monotonic() - started < POOL_DEADLINE * 2 + 1.5
        proxy.resume()
        async with pool.connection() as connection:
            await connection.execute("SELECT 1")
    finally:
        await pool.close()
        get_settings.cache_clear()


async def test_a_query_on_a_lent_connection_has_the_deadline(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGNT_DB_SILENT_AFTER_SECONDS", str(SILENT_AFTER))
    get_settings.cache_clear()
    pool = autocommit_pool(conninfo=db_url, min_size=1, max_size=1, open=False)
    try:
        await pool.open(wait=True)
        started = time.monotonic()
        with pytest.raises(outage.NoAnswer):
            async with pool.connection() as connection:
                await connection.execute("SELECT pg_sleep(60)")
        assert time.monotonic() - started < POOL_DEADLINE + 1.5
        async with pool.connection() as connection:
            await connection.execute("SELECT 1")
    finally:
        await pool.close()
        get_settings.cache_clear()


async def test_a_connection_that_just_answered_is_lent_without_the_check(
    db_url: str, proxy: SilentProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check's round trip is skipped for a connection that answered within
    ``TRUSTED_SECONDS``: lent while the database is already silent, it is the
    query's own deadline that finds out; a connection idle for longer is checked,
    and the check finds out before it is lent."""
    monkeypatch.setenv("AGNT_DB_SILENT_AFTER_SECONDS", str(SILENT_AFTER))
    get_settings.cache_clear()
    pool = autocommit_pool(
        conninfo=proxy.url(db_url), min_size=1, max_size=1, open=False
    )
    try:
        await pool.open(wait=True)
        async with pool.connection() as connection:
            await connection.execute("SELECT 1")
        proxy.pause()
        lent = False
        with pytest.raises(outage.NoAnswer):
            async with pool.connection() as connection:
                lent = True
                await connection.execute("SELECT 1")
        assert lent
        proxy.resume()
        async with pool.connection() as connection:
            await connection.execute("SELECT 1")
        await asyncio.sleep(connector.TRUSTED_SECONDS + 0.2)
        proxy.pause()
        lent = False
        with pytest.raises(Exception) as raised:
            async with pool.connection() as connection:
                lent = True
        assert not lent
        assert outage.is_connection_lost(raised.value), raised.value
        proxy.resume()
    finally:
        await pool.close()
        get_settings.cache_clear()
