"""The one chunk walker of every job: set-based work in bounded chunks, each its own
short transaction, with a stop checkpoint before each chunk.

``walk`` runs one statement again and again until it touches fewer rows than a
chunk, optionally resuming each chunk where the last ended (a keyset walk);
``run_chunked`` is its form for plain deletes and updates. ``due_ids`` and
``staged_ids`` hand ids to Python in keyset chunks, for work done row by row (a
call to Stripe, a text analysis); ``id_ranges`` splits an id space into ranges.

The statement does the whole chunk in SQL (``DELETE ... WHERE ctid =
ANY(ARRAY(SELECT ctid ... ORDER BY ... LIMIT :limit FOR UPDATE SKIP LOCKED))``) and
returns nothing (its row count is the chunk's count) or a single row of counts; no
row data reaches Python, so memory does not grow with the table, and each
transaction holds its locks for one chunk only. Rows another worker holds are
skipped, so two copies of a job share the work instead of waiting.

Why ``ctid = ANY(ARRAY(...))`` rather than ``id IN (SELECT id ...)``: for the ``IN``
form the planner may hash the claimed ids and scan the whole table to join them,
every chunk, so a chunk's cost grows with the table (``agnt-jobs bench`` measured a
retention delete 10x slower than one plain ``DELETE``, and slower on a bigger
table). The array is computed once, and the rows, locked by the subquery and so
unable to move, are fetched by their physical address.

Two more things ``agnt-jobs bench`` found in a retention delete of 100,000 rows in
chunks of 5,000 (3x the single ``DELETE``):

* Order the claim by the column an index serves (``ORDER BY created_at``). Without
  it the planner may pick a sequential scan, cheap while due rows are found at
  the start of the table, but the last chunk, the one that comes back short, then
  reads the whole table to prove there is nothing left: a third of the job's time
  on a 600,000-row table. Through the index that proof costs one index probe.
* Return no rows: ``DELETE ... RETURNING 1`` counted in a CTE made Postgres fetch
  every deleted row once more for the RETURNING list, a seventh of the job. The
  statement's own row count is the count.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult, Engine

from agnt_jobs import logs, tracing
from agnt_jobs.checkpoint import checkpoint

logger = logging.getLogger(__name__)


@contextmanager
def chunk_transaction(engine: Engine) -> Iterator[Connection]:
    """One chunk's transaction, committed without waiting for its WAL to reach disk.

    A job of many chunks otherwise pays one WAL flush per chunk: ``agnt-jobs bench``
    measured a 100-chunk retention delete at 4-6x the time of one plain ``DELETE``,
    most of it in those flushes. Skipping the wait is safe here because (1) a chunk
    only changes our own tables, no outside system, and commits or is lost whole;
    (2) the job's end is recorded by Procrastinate with an ordinary, flushed commit,
    and Postgres flushes WAL in order, so once a run shows as finished every chunk
    before it is on disk too; (3) only a crash of the Postgres server itself, before
    that, can lose a chunk, and every job is idempotent: its next run does the chunk
    again. Chunks that call Stripe, the gateway or any peer do not use this.
    """
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL synchronous_commit = off"))
        yield connection


def due_ids(
    engine: Engine, query: sa.TextClause, now: datetime, limit: int
) -> Iterator[int]:
    """Ids of the rows due for another try, oldest due first, in keyset chunks each
    read in its own short transaction. ``query`` takes ``:now``, ``:after_at``,
    ``:after_id`` and ``:limit`` and returns ``id, due_at`` in (due_at, id) order;
    handling a row moves its due time past ``now``, so the walk never meets it
    again."""
    after_at, after_id = datetime.min.replace(tzinfo=now.tzinfo), 0
    while True:
        checkpoint()
        with engine.connect() as connection:
            due = list(
                connection.execute(
                    query,
                    {
                        "now": now,
                        "after_at": after_at,
                        "after_id": after_id,
                        "limit": limit,
                    },
                )
            )
        yield from (row.id for row in due)
        if len(due) < limit:
            return
        after_at, after_id = due[-1].due_at, due[-1].id


def retention_delete(table: str, where: str, order_by: str | None) -> sa.TextClause:
    """The chunked DELETE every retention job runs with ``run_chunked``: the rows of
    ``table`` matching ``where`` (its parameters are the caller's, ``:limit`` is the
    chunk), claimed ``FOR UPDATE SKIP LOCKED`` in ``order_by`` (the expression an
    index serves; None where none does) and addressed by ``ctid``, returning no
    rows. The module's docstring says why each of these holds."""
    order = f"ORDER BY {order_by}" if order_by else ""
    return sa.text(
        f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("
        f"SELECT ctid FROM {table} WHERE {where} {order} "
        "LIMIT :limit FOR UPDATE SKIP LOCKED))"
    )


@dataclass(frozen=True)
class ChunkedResult:
    rows: int
    chunks: int


def _counts(result: CursorResult[Any]) -> dict[str, Any]:
    """A chunk's counts: the statement's one row, or, for a statement that returns
    no rows, the rows it touched as ``count``."""
    if result.returns_rows:
        return result.one()._asdict()
    return {"count": result.rowcount}


def walk(
    engine: Engine,
    statement: sa.TextClause | str,
    params: Mapping[str, Any],
    chunk_size: int,
    *,
    progress: str = "scanned",
    cursor: Mapping[str, str] | None = None,
    start: Mapping[str, Any] | None = None,
    action: str = "job_chunk",
) -> tuple[Counter[str], int]:
    """Run ``statement`` a chunk at a time, each chunk its own transaction, until its
    ``progress`` count comes back short of ``chunk_size``; return the summed counts
    and how many chunks it took. The one chunk loop of every job.

    ``statement`` takes ``:limit`` (a named query string takes ``%(limit)s``) and
    returns one row of counts, or no rows (see ``_counts``). Without a ``cursor``,
    handled rows must stop qualifying (deleted, status changed, row inserted), so
    the next chunk finds the rest. With one, each chunk starts where the last
    ended, a keyset walk: ``cursor`` maps each resume parameter to the column of
    the chunk's row holding its next value, ``start`` gives the first values, and
    a NULL there ends the walk. A checkpoint before each chunk lets a stopped run
    end between two chunks.
    """
    cursor = cursor or {}
    resume_columns = {*cursor.values(), "last_id"}
    after = dict(start or {})
    totals: Counter[str] = Counter()
    chunks = 0
    while True:
        checkpoint()
        values = {**params, **after, "limit": chunk_size}
        with (
            tracing.span(f"chunk {action}", {"agnt.chunk": chunks + 1}) as traced,
            chunk_transaction(engine) as connection,
        ):
            if isinstance(statement, str):
                result = connection.exec_driver_sql(statement, values)
            else:
                result = connection.execute(statement, values)
            counts = _counts(result)
            traced.set_attribute("agnt.rows", counts[progress])
        chunks += 1
        totals.update({k: v for k, v in counts.items() if k not in resume_columns})
        logger.debug("chunk done", extra=logs.event(action, chunk=chunks, **counts))
        if counts[progress] < chunk_size or any(
            counts[column] is None for column in cursor.values()
        ):
            return totals, chunks
        after = {param: counts[column] for param, column in cursor.items()}


def run_chunked(
    engine: Engine,
    statement: sa.TextClause,
    params: dict[str, Any],
    chunk_size: int,
    action: str,
) -> ChunkedResult:
    """Run ``statement`` until a chunk comes back short. The statement either
    returns no rows (a plain ``DELETE`` or ``UPDATE``: the rows it touched are its
    row count) or one row with a ``count`` column; the rows themselves are never
    fetched."""
    totals, chunks = walk(
        engine, statement, params, chunk_size, progress="count", action=action
    )
    return ChunkedResult(totals["count"], chunks)


# --- ids in chunks, for work that needs them in Python -----------------------------


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
