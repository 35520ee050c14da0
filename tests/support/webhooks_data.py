"""Builders for webhook endpoints and deliveries. Delivery due times are relative
to the database clock, which the drain's claim reads."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def add_endpoint(
    connection: Connection, url: str, secret: str, *, disabled: bool = False
) -> int:
    return connection.execute(
        sa.text(
            """
            INSERT INTO webhook_endpoints (url, secret, disabled_at)
            VALUES (:url, :secret, CASE WHEN :disabled THEN now() END)
            RETURNING id
            """
        ),
        {"url": url, "secret": secret, "disabled": disabled},
    ).scalar_one()


def add_deliveries(
    connection: Connection,
    endpoint_id: int,
    count: int = 1,
    *,
    status: str = "FAILED",
    attempts: int = 1,
    due_in_seconds: float = -1,
    payload: dict[str, Any] | None = None,
    prefix: str = "evt",
) -> list[int]:
    """``count`` deliveries of events ``<prefix>_1``...; due ``due_in_seconds`` from
    now (negative: already due)."""
    rows = connection.execute(
        sa.text(
            """
            INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload,
                                            status, attempts, next_attempt_at)
            SELECT :endpoint, :prefix || '_' || i, 'booking.confirmed',
                   CAST(:payload AS jsonb) || jsonb_build_object('n', i),
                   :status, :attempts, now() + make_interval(secs => :due)
            FROM generate_series(1, :count) AS i
            RETURNING id
            """
        ),
        {
            "endpoint": endpoint_id,
            "prefix": prefix,
            "payload": json.dumps(payload or {"booking_id": 42, "venue": "Warung"}),
            "status": status,
            "attempts": attempts,
            "due": due_in_seconds,
            "count": count,
        },
    )
    return [row.id for row in rows]


def make_due(connection: Connection) -> None:
    connection.execute(
        sa.text(
            "UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 s' "
            "WHERE status = 'FAILED'"
        )
    )
