"""What the admin view reads from the job database, for its JSON API and its pages
alike: plain functions over an ``AdminContext`` that return data, with no HTTP in
them. Each module loads the named queries it runs (``db/sql/admin.sql``, and the
queues' figures from ``db/sql/metrics.sql``, the same ones ``GET /metrics``
serves)."""

from __future__ import annotations

from datetime import timedelta


def seconds(delta: timedelta | None) -> float | None:
    """A span as the API's ``*_seconds`` fields give it."""
    return None if delta is None else delta.total_seconds()
