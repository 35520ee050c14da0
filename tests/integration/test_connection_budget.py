"""A worker on a server with no connection slot left: it waits, says so once with
the server's reason, and goes on when a slot frees, at start and later; its
heartbeat records that it is starved, for the admin page and /metrics.

A role with ``CONNECTION LIMIT`` makes the server refuse our connections exactly
as a full ``max_connections`` does (SQLSTATE 53300, "too many connections"), on
the shared test server, without filling it for everybody else.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Engine

from agnt_jobs.db import outage
from agnt_jobs.db.connector import SettingsConnector
from agnt_jobs.db.migrate import current_revision
from agnt_jobs.scheduler.worker import HEARTBEAT
from agnt_jobs.settings import Settings, get_settings


def _as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


@pytest.fixture
def limited(db_url: str, env: Settings) -> Iterator[tuple[str, str]]:
    """(admin URL of this test's database, URL of a role allowed 2 connections,
    with the privileges of the tables' owner: a superuser has no limit)."""
    role = f"agnt_limited_{uuid.uuid4().hex[:8]}"
    name = urlsplit(db_url).path.lstrip("/")
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 2 IN ROLE postgres").format(
                sql.Identifier(role)
            )
        )
    try:
        yield db_url, _as_role(db_url, role)
    finally:
        with psycopg.connect(db_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = %s",
                [role],
            )
            time.sleep(0.2)
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        assert name


def _said(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def test_a_worker_starting_on_a_full_server_waits_and_says_why_once(
    limited: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, url = limited
    held = [psycopg.connect(url), psycopg.connect(url)]
    connector = SettingsConnector(conninfo=url, min_size=1, max_size=2)
    with caplog.at_level(logging.WARNING):
        opening = asyncio.create_task(connector.open_async())
        deadline = time.monotonic() + 20
        while not _said(caplog, "refuses more connections"):
            assert time.monotonic() < deadline, "no line about the full server"
            assert not opening.done(), opening.exception()
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)
        assert not opening.done()
        held.pop().close()
        await asyncio.wait_for(opening, 20)
    try:
        (line,) = _said(caplog, "refuses more connections")
        assert "too many connections for role" in line
        assert "AGNT_DATABASE_URL" not in line
        assert _said(caplog, "database connection back")
        assert not _said(caplog, "database connection lost")
    finally:
        await connector.close_async()
        held.pop().close()


async def test_a_pool_that_cannot_grow_says_why_and_is_starved_until_it_can(
    limited: tuple[str, str],
) -> None:
    _, url = limited
    connector = SettingsConnector(conninfo=url, min_size=1, max_size=2, timeout=1)
    await connector.open_async()
    try:
        outside = psycopg.connect(url)
        pool = connector.pool
        async with pool.connection():
            # The pool has its one connection lent; a second needs a new one,
            # which the server refuses.
            with pytest.raises(Exception) as refused:
                async with pool.connection(timeout=2):
                    pass
            assert outage.is_server_full(refused.value)
            assert "too many connections" in str(refused.value)
            assert outage.is_server_full(connector.starved)
            outside.close()
            async with pool.connection(timeout=10):
                pass
        assert connector.starved is None
    finally:
        await connector.close_async()


def test_the_start_up_check_waits_for_a_slot_and_other_errors_pass(
    limited: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, url = limited
    held = [psycopg.connect(url), psycopg.connect(url)]
    threading.Timer(1.5, held.pop().close).start()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        revision = outage.waiting_while_full(
            lambda: current_revision(url),
            where="start",
            outage=outage.Outage(report_seconds=30),
            backoff=outage.Backoff(0.1, 0.5),
        )
    assert revision is not None
    assert time.monotonic() - started >= 1.4
    assert len(_said(caplog, "refuses more connections")) == 1
    held.pop().close()
    missing = url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(Exception, match="no_such_database"):
        outage.waiting_while_full(
            lambda: current_revision(missing),
            where="start",
            outage=outage.Outage(report_seconds=30),
            backoff=outage.Backoff(0.1, 0.5),
        )


def test_the_heartbeat_records_since_when_a_worker_is_starved(engine: Engine) -> None:
    def beat(starved: str | None) -> tuple[object, object]:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                HEARTBEAT, {"worker_id": worker, "starved": starved}
            )
            row = connection.execute(
                sa.text(
                    "SELECT starved_since, starved_reason FROM schedule_workers "
                    "WHERE worker_id = :id"
                ),
                {"id": worker},
            ).one()
        return row.starved_since, row.starved_reason

    with engine.begin() as connection:
        worker = connection.execute(
            sa.text("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id")
        ).scalar_one()
        connection.execute(
            sa.text(
                "INSERT INTO schedule_workers (worker_id, hostname, pid, deployed) "
                "VALUES (:id, 'h', 1, '{}')"
            ),
            {"id": worker},
        )
    assert beat(None) == (None, None)
    since, reason = beat("too many clients already")
    assert since is not None and reason == "too many clients already"
    time.sleep(0.05)
    assert beat("too many clients already") == (since, reason)
    assert beat(None) == (None, None)


async def test_the_connector_opens_once_a_full_server_frees_a_slot(
    limited: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stock ``procrastinate worker`` opens the App's connector itself: its
    start-up check of the configured database waits for a slot too, instead of
    exiting."""
    _, url = limited
    monkeypatch.setenv("AGNT_DATABASE_URL", url)
    get_settings.cache_clear()
    held = [psycopg.connect(url), psycopg.connect(url)]
    threading.Timer(1.5, held.pop().close).start()
    connector = SettingsConnector(min_size=1, max_size=1)
    try:
        with caplog.at_level(logging.WARNING):
            await asyncio.wait_for(connector.open_async(), 30)
        assert _said(caplog, "refuses more connections")
    finally:
        await connector.close_async()
        held.pop().close()
        get_settings.cache_clear()
