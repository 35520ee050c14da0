"""How the heavy jobs walk large sets in chunks, with short transactions and flat
memory.

``staged_ids`` runs one query that finds the ids to work on (e.g. the users who talked
yesterday) once, into a temporary table of the job's connection, then hands them out
in keyset order: the expensive scan happens once, each chunk is an index range read,
and the chunk's work commits on its own. ``id_ranges`` splits a table's id space into
fixed-width ranges for set-based ``INSERT ... SELECT`` work that needs no id list.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa

from agnt_jobs.checkpoint import checkpoint


def staged_ids(
    connection: sa.Connection,
    name: str,
    select_ids: str,
    params: Mapping[str, Any],
    chunk_size: int,
) -> Iterator[list[int]]:
    """Yield the ids ``select_ids`` returns, ascending, ``chunk_size`` at a time.

    Each chunk is fetched in a fresh transaction that the caller commits when its
    work is done. The temporary table is dropped at the end, also when the caller
    stops early or fails (the pool reuses connections, and temp tables outlive a
    rollback).
    """
    table = f"pg_temp.{name}"
    connection.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    connection.execute(sa.text(f"CREATE TEMP TABLE {name} (id bigint PRIMARY KEY)"))
    connection.execute(
        sa.text(f"INSERT INTO {table} (id) {select_ids} ON CONFLICT DO NOTHING"),
        dict(params),
    )
    connection.execute(sa.text(f"ANALYZE {table}"))
    connection.commit()
    after = 0
    try:
        while True:
            checkpoint()
            ids = list(
                connection.execute(
                    sa.text(
                        f"SELECT id FROM {table} WHERE id > :after ORDER BY id "
                        "LIMIT :limit"
                    ),
                    {"after": after, "limit": chunk_size},
                ).scalars()
            )
            if not ids:
                connection.commit()
                return
            after = ids[-1]
            yield ids
    finally:
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            connection.rollback()
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
            connection.commit()


def id_ranges(
    connection: sa.Connection, table: str, column: str, width: int
) -> Iterator[tuple[int, int]]:
    """Half-open ranges ``[low, high)`` of ``width`` ids covering ``table.column``
    (by its current minimum and maximum; an empty table gives none)."""
    low, high = connection.execute(
        sa.text(f"SELECT min({column}), max({column}) FROM {table}")
    ).one()
    connection.commit()
    if low is None:
        return
    start = int(low)
    while start <= int(high):
        yield start, start + width
        start += width
