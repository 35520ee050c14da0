"""Rows one at a time, with the values a test names: the tests' part of the domain
data (the demo's and the bench's are set-based; see docs/development.md, "Domain
data"). Each function takes an Engine (its own transaction, committed) or a
Connection (the caller's transaction).

``user``, ``venue`` and ``booking`` fill only what the schema requires and what a
test says; a domain's support module adds its own defaults on top.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

_serial = itertools.count(1)


@contextlib.contextmanager
def _connection(target: Engine | Connection) -> Iterator[Connection]:
    if isinstance(target, Connection):
        yield target
    else:
        with target.begin() as connection:
            yield connection


def insert(target: Engine | Connection, table: str, **values: Any) -> int:
    """Insert one row of ``values``; its first column (the id)."""
    columns = ", ".join(values)
    marks = ", ".join(f":{name}" for name in values)
    with _connection(target) as connection:
        return connection.execute(
            sa.text(f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING *"),
            values,
        ).scalar_one()


def scalar(target: Engine | Connection, sql: str, **params: Any) -> Any:
    with _connection(target) as connection:
        return connection.execute(sa.text(sql), params).scalar()


def execute(target: Engine | Connection, sql: str, **params: Any) -> int:
    """Run one statement (or several without parameters); its row count."""
    with _connection(target) as connection:
        return connection.execute(sa.text(sql), params).rowcount


def rows(target: Engine | Connection, sql: str, **params: Any) -> list[Any]:
    with _connection(target) as connection:
        return list(connection.execute(sa.text(sql), params).all())


def user(target: Engine | Connection, **values: Any) -> int:
    """A user reachable on WhatsApp at an address of its own."""
    n = next(_serial)
    row = {
        "display_name": f"User {n}",
        "channel": "whatsapp",
        "channel_address": f"+6281{n:07d}",
        **values,
    }
    return insert(target, "users", **row)


def venue(target: Engine | Connection, **values: Any) -> int:
    return insert(target, "venues", **{"name": f"Warung {next(_serial)}", **values})


def booking(
    target: Engine | Connection,
    user_id: int | None,
    venue_id: int,
    status: str,
    start: datetime,
    *,
    minutes: int = 120,
    **values: Any,
) -> int:
    """A booking of ``minutes`` from ``start``."""
    return insert(
        target,
        "bookings",
        user_id=user_id,
        venue_id=venue_id,
        status=status,
        slot_start=start,
        slot_end=start + timedelta(minutes=minutes),
        **values,
    )
