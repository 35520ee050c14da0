"""Behind a real PgBouncer in transaction pooling (``AGNT_DATABASE_DIRECT_URL``
set): the queue pool's statements go through it with no prepared statement left
on a server connection, and the LISTEN session connects straight to Postgres, so
notifications arrive. PgBouncer sits in front of the test server whether it listens
on TCP or on a Unix socket (the embedded one). Skipped, with the reason, where
PgBouncer cannot run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from agnt_jobs import db
from agnt_jobs.db.connector import LISTENER_NAME, SettingsConnector
from agnt_jobs.settings import Settings, get_settings
from agnt_jobs.testing.pgbouncer import PgBouncer, PgBouncerUnavailable


@pytest.fixture
def bouncer(db_url: str) -> Iterator[PgBouncer]:
    try:
        bouncer = PgBouncer(db_url, pool_size=2)
        bouncer.start()
    except PgBouncerUnavailable as reason:
        pytest.skip(str(reason))
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture
def pooled(
    db_url: str, bouncer: PgBouncer, env: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """This process configured as behind PgBouncer: the pooled URL."""
    url = bouncer.url(conninfo_to_dict(db_url)["dbname"])
    monkeypatch.setenv("AGNT_DATABASE_URL", url)
    monkeypatch.setenv("AGNT_DATABASE_DIRECT_URL", db_url)
    get_settings.cache_clear()
    db.engine.cache_clear()
    yield url
    get_settings.cache_clear()
    db.engine.cache_clear()


def _clients(bouncer: PgBouncer) -> list[dict[str, object]]:
    with psycopg.connect(bouncer.url("pgbouncer"), autocommit=True) as admin:
        cursor = admin.cursor()
        cursor.execute("SHOW CLIENTS")
        names = [column.name for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


async def test_the_queue_pool_goes_through_pgbouncer_and_the_listener_does_not(
    pooled: str, bouncer: PgBouncer, db_url: str
) -> None:
    connector = SettingsConnector()
    await connector.open_async()
    heard: list[str] = []
    try:
        # Many more runs of one statement than psycopg's prepare threshold (5),
        # on more client connections than PgBouncer has server connections: a
        # statement prepared on one server connection would be missing on another.
        async def select_many() -> None:
            for n in range(20):
                row = await connector.execute_query_one_async(
                    "SELECT count(*) AS n FROM procrastinate_jobs WHERE id > %(n)s",
                    n=n,
                )
                assert row["n"] == 0

        await asyncio.gather(*(select_many() for _ in range(4)))

        async def on_notification(*, channel: str, payload: str) -> None:
            heard.append(payload)

        listening = asyncio.create_task(
            connector.listen_notify(
                on_notification=on_notification, channels=["agnt_test_channel"]
            )
        )
        for _ in range(100):
            with psycopg.connect(db_url, autocommit=True) as server:
                listeners = server.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    [LISTENER_NAME],
                ).fetchone()
            if listeners and listeners[0]:
                break
            await asyncio.sleep(0.05)
        with psycopg.connect(pooled, autocommit=True, prepare_threshold=None) as c:
            c.execute("SELECT pg_notify('agnt_test_channel', 'hello')")
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.05)
        assert heard == ["hello"]
        names = [client.get("application_name") for client in _clients(bouncer)]
        assert LISTENER_NAME not in names
        assert bouncer.server_connections() <= bouncer.pool_size
        listening.cancel()
    finally:
        await connector.close_async()


def test_job_bodies_and_migrations_connect_straight_to_postgres(
    pooled: str, db_url: str, bouncer: PgBouncer
) -> None:
    assert db.session_url() == db_url
    assert db.database_url() == pooled
    before = len(_clients(bouncer))
    with db.engine().connect() as connection:
        connection.exec_driver_sql("SELECT 1")
        assert len(_clients(bouncer)) == before
