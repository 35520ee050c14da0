"""Telling a full server from a lost one and from a bad setting, and saying it once."""

from __future__ import annotations

import logging

import psycopg
import pytest
import sqlalchemy.exc
from psycopg import errors
from psycopg_pool import PoolTimeout

from agnt_jobs.db.outage import Outage, is_connection_lost, is_server_full

# What libpq says when the server refuses a connection for want of slots: the
# error of a refused connection carries no SQLSTATE, only this text.
TOO_MANY = (
    'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
    "FATAL:  sorry, too many clients already"
)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError(TOO_MANY),
        psycopg.OperationalError('FATAL:  too many connections for role "agnt"'),
        # Postgres 15 and 16 to a role that is not a superuser.
        psycopg.OperationalError(
            "FATAL:  remaining connection slots are reserved for non-replication "
            "superuser connections"
        ),
        psycopg.OperationalError(
            "FATAL:  remaining connection slots are reserved for roles with the "
            "SUPERUSER attribute"
        ),
        errors.TooManyConnections("too many"),
        errors.ConfigurationLimitExceeded("limit"),
    ],
)
def test_a_full_server_is_recognised_and_is_an_outage(error: Exception) -> None:
    assert is_server_full(error)
    assert is_connection_lost(error)


def test_a_full_server_is_recognised_through_its_wrappers() -> None:
    timeout = PoolTimeout("couldn't get a connection after 30.00 sec")
    timeout.__cause__ = psycopg.OperationalError(TOO_MANY)
    assert is_server_full(timeout)
    wrapped = sqlalchemy.exc.OperationalError(
        "SELECT 1", {}, psycopg.OperationalError(TOO_MANY)
    )
    assert is_server_full(wrapped)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("connection refused"),
        errors.InvalidPassword("password authentication failed"),
        errors.InvalidCatalogName('database "x" does not exist'),
        PoolTimeout("pool initialization incomplete after 30.0 sec"),
        None,
    ],
)
def test_anything_else_is_not_a_full_server(error: Exception | None) -> None:
    assert not is_server_full(error)


def test_a_full_server_is_said_once_with_its_cause_and_what_to_do(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    outage = Outage(report_seconds=30, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="agnt_jobs.db.outage"):
        for _ in range(10):
            outage.lost("start", psycopg.OperationalError(TOO_MANY))
            now[0] += 1
        outage.back()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "refuses more connections" in lines[0]
    assert "too many clients already" in lines[0]
    assert "max_connections" in lines[0] and "PgBouncer" in lines[0]
    assert "AGNT_DATABASE_URL" not in lines[0]
    assert lines[1].startswith("database connection back after")
