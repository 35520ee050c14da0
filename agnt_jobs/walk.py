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

Range changes (``change_by_range``: the retention deletes, and updates that move a
row out of its job's reach, as marking a session abandoned does) go further: a
chunk is a plain ``DELETE`` or ``UPDATE`` of a range of times, each row read once,
falling back to the claiming form above only when a row is held elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
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


# How long a range chunk's plain statement waits for a row another transaction
# holds before the rest of the run claims its rows with SKIP LOCKED instead.
RANGE_LOCK_WAIT = "100ms"
# Where a range walk starts: before any time a row can hold.
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RangeChange:
    """A change made to the rows of ``table`` matching ``where`` (its parameters
    are the caller's), oldest first by ``order_by``, a timestamp expression an
    index serves which ``where`` bounds (``created_at < :cutoff``); None where no
    index serves one. The change deletes the rows, or, with ``assign`` (an
    ``UPDATE``'s ``SET`` list), updates them, and must then take each row out of
    ``where`` (``status = 'ABANDONED'`` for a ``where`` of ``status = 'ACTIVE'``).
    ``change_by_range`` runs it. Its statements are built once and reused by
    every chunk of every run."""

    table: str
    where: str
    order_by: str | None
    assign: str | None = None

    def _change(self, where: str) -> str:
        if self.assign is None:
            return f"DELETE FROM {self.table} WHERE {where}"
        return f"UPDATE {self.table} SET {self.assign} WHERE {where}"

    @functools.cached_property
    def claiming(self) -> sa.TextClause:
        """A chunk claimed ``FOR UPDATE SKIP LOCKED`` and changed by ``ctid``,
        returning no rows (``:limit`` is the chunk): the form that never waits."""
        order = f"ORDER BY {self.order_by}" if self.order_by else ""
        return sa.text(
            self._change(
                f"ctid = ANY(ARRAY(SELECT ctid FROM {self.table} WHERE {self.where} "
                f"{order} LIMIT :limit FOR UPDATE SKIP LOCKED))"
            )
        )

    @functools.cached_property
    def next_bound(self) -> sa.TextClause:
        """The first statement of a chunk's transaction: the time up to which the
        chunk changes rows (that of the ``:limit``-th row after ``:after``, or,
        with fewer left, the last one's; NULL: none), and the transaction's
        settings, in the same round trip: its commit does not wait for the WAL
        flush (see ``chunk_transaction`` for why that is safe) and its statements
        wait at most ``:lock_wait`` for a lock."""
        after = f"{self.where} AND {self.order_by} > :after"
        return sa.text(
            "SELECT set_config('synchronous_commit', 'off', true), "
            "set_config('lock_timeout', :lock_wait, true), "
            f"COALESCE((SELECT {self.order_by} FROM {self.table} "
            f"WHERE {after} ORDER BY {self.order_by} "
            "OFFSET CAST(:limit AS integer) - 1 LIMIT 1), "
            f"(SELECT max({self.order_by}) FROM {self.table} WHERE {after})) "
            "AS bound"
        )

    @functools.cached_property
    def up_to_bound(self) -> sa.TextClause:
        """One chunk: every matching row after ``:after`` and up to ``:bound``."""
        return sa.text(
            self._change(
                f"{self.where} AND {self.order_by} > :after "
                f"AND {self.order_by} <= :bound"
            )
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


def change_by_range(
    engine: Engine,
    change: RangeChange,
    params: dict[str, Any],
    chunk_size: int,
    action: str,
) -> ChunkedResult:
    """Make a range change in chunks, each its own transaction, oldest first.

    A chunk is a plain ``DELETE`` or ``UPDATE`` of a range of ``order_by``: the
    rows after the last chunk's end, up to the time of the ``chunk_size``-th of
    them, so each row is read once, by the change, and no chunk walks over the
    index entries of the rows earlier chunks changed. Rows of one instant (written
    by one transaction) go in one chunk: a chunk holds ``chunk_size`` rows and the
    rest of its last instant. The claiming form (lock each row, skip the held
    ones, change by address) reads and writes every row twice; ``agnt-jobs
    bench`` measured it at 2.5 to 3.4x one ``DELETE`` of the same rows at scale
    100.

    A plain statement waits for a row another transaction holds: it waits at most
    ``RANGE_LOCK_WAIT``, and from then on the run claims its rows with SKIP
    LOCKED, leaving the held ones to the next run. Without ``order_by`` every
    chunk is claimed so."""
    if change.order_by is None:
        return run_chunked(engine, change.claiming, params, chunk_size, action)
    after, rows, chunks = EARLIEST, 0, 0
    while True:
        checkpoint()
        try:
            with (
                tracing.span(f"chunk {action}", {"agnt.chunk": chunks + 1}) as traced,
                engine.begin() as connection,
            ):
                values = {**params, "after": after, "limit": chunk_size}
                bound = (
                    connection.execute(
                        change.next_bound,
                        {**values, "lock_wait": RANGE_LOCK_WAIT},
                    )
                    .one()
                    .bound
                )
                if bound is None:  # a chunk that found nothing, as run_chunked's
                    return ChunkedResult(rows, chunks + 1)
                count = connection.execute(
                    change.up_to_bound, {**values, "bound": bound}
                ).rowcount
                traced.set_attribute("agnt.rows", count)
        except sa.exc.OperationalError as error:
            if not isinstance(error.orig, psycopg.errors.LockNotAvailable):
                raise
            logger.info(
                "rows held by another transaction: the rest of this run skips them",
                extra=logs.event(action, held_after=str(after)),
            )
            rest = run_chunked(engine, change.claiming, params, chunk_size, action)
            return ChunkedResult(rows + rest.rows, chunks + rest.chunks)
        chunks += 1
        rows += count
        logger.debug("chunk done", extra=logs.event(action, chunk=chunks, count=count))
        if count < chunk_size:
            return ChunkedResult(rows, chunks)
        after = bound


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
