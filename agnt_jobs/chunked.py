"""Set-based work in bounded chunks: run one statement again and again, each time in
its own short transaction, until it touches fewer rows than a chunk.

The statement does the whole chunk in SQL (``DELETE ... WHERE ctid =
ANY(ARRAY(SELECT ctid ... LIMIT :limit FOR UPDATE SKIP LOCKED))``) and returns one
row per row it touched, or a single ``count`` column; no row data reaches Python, so
memory does not grow with the table, and each transaction holds its locks for one
chunk only. Rows another worker holds are skipped, so two copies of a job share the
work instead of waiting.

Why ``ctid = ANY(ARRAY(...))`` rather than ``id IN (SELECT id ...)``: for the ``IN``
form the planner may hash the claimed ids and scan the whole table to join them,
every chunk, so a chunk's cost grows with the table (``agnt-jobs bench`` measured a
retention delete 10x slower than one plain ``DELETE``, and slower on a bigger
table). The array is computed once, and the rows, locked by the subquery and so
unable to move, are fetched by their physical address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkedResult:
    rows: int
    chunks: int


def run_chunked(
    engine: Engine,
    statement: sa.TextClause,
    params: dict[str, Any],
    chunk_size: int,
    action: str,
) -> ChunkedResult:
    """Run ``statement`` (which takes ``:limit``) until a chunk comes back short.

    The statement must return ``count`` (how many rows it touched), so that the
    rows themselves are never fetched.
    """
    rows = chunks = 0
    while True:
        with engine.begin() as connection:
            touched = connection.execute(
                statement, {**params, "limit": chunk_size}
            ).scalar_one()
        chunks += 1
        rows += touched
        logger.debug(
            "chunk done",
            extra={"action": action, "chunk": chunks, "rows": touched},
        )
        if touched < chunk_size:
            return ChunkedResult(rows, chunks)
