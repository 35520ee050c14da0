"""A retention delete's range chunk reads through its index on a large table:
200,000 error-log entries over half a year, five in six past the window,
analysed, and both statements of a chunk (``RangeChange.next_bound``, the
probe, and ``up_to_bound``, the delete) EXPLAINed with the parameters of a first
chunk and of a last. A sequential scan here would make every chunk read the whole
table: the cost of a run would grow with the chunks times the table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs.jobs import housekeeping
from agnt_jobs.walk import EARLIEST, RANGE_LOCK_WAIT, RangeChange

ENTRIES = 200_000
CHUNK = 5_000
NOW = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=30)

FILL = """
INSERT INTO error_log (source, message, created_at)
SELECT 'test', 'boom', CAST(:now AS timestamptz) - interval '180 days'
       + g * interval '77 seconds'
FROM generate_series(1, :n) AS g
"""


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _scans(plan: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    """(scan type, index) of every scan of the error log; a bitmap heap scan is
    named by the bitmap index scans under it."""
    for node in _nodes(plan):
        if node.get("Relation Name") != "error_log" or node["Node Type"] == (
            "ModifyTable"
        ):
            continue
        if node["Node Type"] == "Bitmap Heap Scan":
            yield from (
                ("Bitmap Heap Scan", inner.get("Index Name"))
                for inner in _nodes(node)
                if inner["Node Type"] == "Bitmap Index Scan"
            )
        else:
            yield node["Node Type"], node.get("Index Name")


def _plan(engine: Engine, statement: sa.TextClause, **params: Any) -> set[Any]:
    with engine.begin() as connection:
        (plan,) = connection.execute(
            sa.text("EXPLAIN (FORMAT JSON) " + statement.text), params
        ).scalar_one()
        connection.rollback()
    return set(_scans(plan["Plan"]))


@pytest.fixture
def filled(engine: Engine) -> Engine:
    with engine.begin() as connection:
        connection.execute(sa.text(FILL), {"n": ENTRIES, "now": NOW})
        connection.execute(sa.text("ANALYZE error_log"))
    return engine


def test_a_range_chunk_reads_the_error_log_through_its_index(filled: Engine) -> None:
    retention: RangeChange = housekeeping.PRUNE_ERROR_LOG
    with filled.connect() as connection:
        times = list(
            connection.execute(
                sa.text(
                    "SELECT created_at FROM error_log WHERE created_at < :cutoff "
                    "ORDER BY created_at"
                ),
                {"cutoff": CUTOFF},
            ).scalars()
        )
    assert len(times) > 20 * CHUNK
    chunks = {
        "first": (EARLIEST, times[CHUNK - 1]),
        "last": (times[-CHUNK // 2], times[-1]),
    }
    index = {
        (scan, "ix_error_log_created_at")
        for scan in ("Index Only Scan", "Index Scan", "Bitmap Heap Scan")
    }
    for name, (after, bound) in chunks.items():
        probe = _plan(
            filled,
            retention.next_bound,
            cutoff=CUTOFF,
            after=after,
            limit=CHUNK,
            lock_wait=RANGE_LOCK_WAIT,
        )
        delete = _plan(
            filled, retention.up_to_bound, cutoff=CUTOFF, after=after, bound=bound
        )
        assert probe and probe <= index, (name, probe)
        assert delete and delete <= index, (name, delete)
