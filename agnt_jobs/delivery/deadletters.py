"""Writing to the dead-letter queue: one row per piece of work that gave up, keyed by
(source, source_id) so that recording the same failure twice records it once."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

INSERT_DEAD_LETTER = sa.text(
    """
    INSERT INTO dead_letters (source, source_id, error_class, error, payload, attempts)
    VALUES (:source, :source_id, :error_class, :error, CAST(:payload AS jsonb),
            :attempts)
    ON CONFLICT (source, source_id) DO NOTHING
    """
)


@dataclass(frozen=True)
class DeadLetter:
    source: str
    source_id: str
    error_class: str
    error: str | None
    attempts: int
    payload: dict[str, Any] = field(default_factory=dict)


def record(connection: Connection, letters: Iterable[DeadLetter]) -> None:
    rows = [
        {
            "source": letter.source,
            "source_id": letter.source_id,
            "error_class": letter.error_class,
            "error": letter.error,
            "payload": json.dumps(letter.payload, default=str),
            "attempts": letter.attempts,
        }
        for letter in letters
    ]
    if rows:
        connection.execute(INSERT_DEAD_LETTER, rows)
