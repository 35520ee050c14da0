"""Reading any instant and interval Postgres can store, for what shows rows to
people (the admin view): Postgres keeps timestamps from 4713 BC to year 294276
and ``infinity``, Python's datetime only years 1 to 9999, and psycopg refuses to
load the rest, which would make a page fail for one row.

On a connection made with ``far_values``, such a timestamp loads as a
``FarInstant``: the nearest instant Python holds (the last microsecond of 9999,
or the first of year 1, UTC) that keeps Postgres's own text in ``text``. An
interval past Python's timedelta loads as ``timedelta.max`` (or ``.min``).
A clamped value is for showing, never for storing back: the admin view's
changes are SQL functions and values it computes, not values it read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.pq import Format
from psycopg.types.datetime import IntervalLoader, TimestamptzLoader

LATEST = datetime.max.replace(tzinfo=UTC)
EARLIEST = datetime.min.replace(tzinfo=UTC)


class FarInstant(datetime):
    """A timestamp Python cannot hold, as the nearest one it can; ``text`` is
    Postgres's (``infinity``, ``10000-01-01 00:00:00+00``)."""

    text: str

    @classmethod
    def of(cls, text: str, after: bool) -> FarInstant:
        near = LATEST if after else EARLIEST
        instant = cls.combine(near.date(), near.timetz())
        instant.text = text
        return instant


def _text(data: Any) -> str:
    return bytes(data).decode("utf-8", "replace")


class _FarTimestamptzLoader(TimestamptzLoader):
    format = Format.TEXT

    def load(self, data: Any) -> datetime:
        try:
            return super().load(data)
        except psycopg.DataError:
            text = _text(data)
            # psycopg's own check: before year 1 is "-infinity" or "... BC".
            after = not (text.startswith("-") or text.endswith(" BC"))
            return FarInstant.of(text, after)


class _FarIntervalLoader(IntervalLoader):
    format = Format.TEXT

    def load(self, data: Any) -> timedelta:
        try:
            return super().load(data)
        except psycopg.DataError:
            text = _text(data)
            return timedelta.min if text.lstrip().startswith("-") else timedelta.max


def far_values(connection: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """``connection``, loading far timestamps and intervals as above."""
    connection.adapters.register_loader("timestamptz", _FarTimestamptzLoader)
    connection.adapters.register_loader("interval", _FarIntervalLoader)
    return connection
