"""Builders for what the health monitor reads: Procrastinate's jobs (inserted as
Procrastinate writes them, its triggers adding the events) and due messages."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def add_job(
    connection: Connection,
    task: str,
    *,
    waiting_since: datetime | None = None,
    scheduled_at: datetime | None = None,
    failed: bool = False,
) -> int:
    """A todo job (deferred at ``waiting_since``, default now), or one that ran and
    failed (its 'failed' event at now)."""
    job_id = connection.execute(
        sa.text(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, scheduled_at) "
            "VALUES ('default', :task, :scheduled_at) RETURNING id"
        ),
        {"task": task, "scheduled_at": scheduled_at},
    ).scalar_one()
    if waiting_since is not None:
        connection.execute(
            sa.text(
                "UPDATE procrastinate_events SET at = :at "
                "WHERE job_id = :id AND type = 'deferred'"
            ),
            {"at": waiting_since, "id": job_id},
        )
    if failed:
        for status in ("doing", "failed"):
            connection.execute(
                sa.text(
                    "UPDATE procrastinate_jobs SET status = CAST(:s AS "
                    "procrastinate_job_status) WHERE id = :id"
                ),
                {"s": status, "id": job_id},
            )
    return job_id


def add_due_messages(connection: Connection, count: int, prefix: str = "m") -> None:
    connection.execute(
        sa.text(
            """
            INSERT INTO send_queue (idempotency_key, kind, channel, recipient, body,
                                    next_attempt_at)
            SELECT :prefix || i, 'test', 'whatsapp', '+62', 'hi', now() - :ago
            FROM generate_series(1, :n) AS i
            """
        ),
        {"prefix": prefix, "n": count, "ago": timedelta(minutes=1)},
    )
