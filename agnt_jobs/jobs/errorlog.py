"""Reporting to the error log what a job found but must not guess about (a
reconciliation's unprovable disagreement). A report names what it is about with a
``key``; the same key is reported at most once per ``since`` window, so a job that
runs every 30 minutes writes one row a day per open problem, not 48."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

REPORT = sa.text(
    """
    INSERT INTO error_log (source, level, message, context)
    SELECT :source, :level, :message, CAST(:context AS jsonb)
    WHERE NOT EXISTS (
        SELECT 1 FROM error_log
        WHERE created_at >= :since AND source = :source AND context->>'key' = :key
    )
    RETURNING id
    """
)


def report(
    connection: Connection,
    source: str,
    key: str,
    message: str,
    since: datetime,
    context: dict[str, Any] | None = None,
    level: str = "ERROR",
) -> bool:
    """Write one error-log row unless ``key`` was reported since ``since``."""
    row = connection.execute(
        REPORT,
        {
            "source": source,
            "level": level,
            "message": message,
            "key": key,
            "since": since,
            "context": json.dumps({**(context or {}), "key": key}, default=str),
        },
    ).first()
    return row is not None
