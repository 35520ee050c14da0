"""Benchmark data: every table a job reads, filled with set-based ``INSERT ...
SELECT FROM generate_series`` around one instant, in two parts whose sizes are
independent:

* the background, proportional to ``scale`` (as ``agnt-jobs demo seed`` sizes it:
  2,000 users, 40 venues and 10,000 bookings per unit, so scale 100 has a million
  bookings), which no job may change;
* the due work, ``due`` rows per job whatever the scale (deleted users past
  retention, expired sessions, old memories...), which the jobs must change.

So scale 10 and scale 100 with the same ``due`` ask each job for the same work on
tables ten times apart: a job whose cost follows the table, not its work, shows.
The statements live in ``fixture_core``, ``fixture_bookings``, ``fixture_messages``,
``fixture_ops`` and ``fixture_knowledge``; each is one statement over bind
parameters (``:at``, ``:users``, ``:due``...).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from agnt_jobs import db, timeutil
from agnt_jobs.datagen import sizes
from agnt_jobs.settings import get_settings


@dataclass(frozen=True)
class Sizes:
    """Row counts of one fixture."""

    scale: int
    due: int

    @property
    def users(self) -> int:
        return sizes.USERS_PER_SCALE * self.scale

    @property
    def venues(self) -> int:
        return sizes.VENUES_PER_SCALE * self.scale

    @property
    def bookings(self) -> int:
        return sizes.BOOKINGS_PER_SCALE * self.scale

    @property
    def drift(self) -> int:
        """Venues whose flags are wrong: a constant, like the due work."""
        return min(self.due, 40)

    @property
    def http_due(self) -> int:
        """Due rows of jobs that make one HTTP call per row (webhooks, watchers):
        fewer, so that the peer's speed does not swamp the database's."""
        return max(1, min(self.due // 10, 1_000))

    @property
    def stripe_due(self) -> int:
        """Due rows of the Stripe jobs: fewer again, as each needs a customer, a
        card and a subscription made in localstripe first (about 10 ms each),
        and subscriptions come from the active venues (240 at scale 10)."""
        return min(self.http_due, 200)


def params(sizes: Sizes, at: datetime, peer_url: str) -> dict[str, Any]:
    """The bind parameters of every fixture statement."""
    tz = timeutil.zone(get_settings().business_timezone)
    week = timeutil.iso_week(at, tz)
    previous = timeutil.iso_week(at, tz, -1)
    return {
        "at": at,
        "scale": sizes.scale,
        "due": sizes.due,
        "users": sizes.users,
        "venues": sizes.venues,
        "bookings": sizes.bookings,
        "drift": sizes.drift,
        "http_due": sizes.http_due,
        "peer": peer_url,
        "today": timeutil.local_date(at, tz),
        "day_start": timeutil.day(at, tz).start,
        "yesterday_start": timeutil.day(at, tz, -1).start,
        "week_start": week.start,
        "previous_week_start": previous.start,
        "previous_week_date": timeutil.local_date(previous.start, tz),
        "light_users": max(1, sizes.due // 10),
        "archive_expired_at": at - timedelta(weeks=20),
    }


def statements() -> Sequence[tuple[str, str]]:
    from agnt_jobs.datagen import (
        fixture_bookings,
        fixture_core,
        fixture_knowledge,
        fixture_messages,
        fixture_ops,
    )

    return [
        *fixture_core.STATEMENTS,
        *fixture_bookings.STATEMENTS,
        *fixture_messages.STATEMENTS,
        *fixture_ops.STATEMENTS,
        *fixture_knowledge.STATEMENTS,
    ]


# Tables filled with explicit ids: their identity sequences must move past them.
EXPLICIT_IDS = (
    "users",
    "venues",
    "bookings",
    "fleet_delta_log",
    "procrastinate_jobs",
    "usage_batches",
)


def fill(url: str, sizes: Sizes, at: datetime, peer_url: str) -> dict[str, float]:
    """Fill the migrated, empty database at ``url``; return seconds per part."""
    engine = db.create_engine(url, poolclass=sa.pool.NullPool)
    values = params(sizes, at, peer_url)
    timings: dict[str, float] = {}
    try:
        with engine.connect() as connection:
            # Benchmark data can be made again: no need to wait for fsyncs.
            connection.execute(sa.text("SET synchronous_commit = off"))
            for name, statement in statements():
                started = time.perf_counter()
                connection.execute(sa.text(statement), values)
                connection.commit()
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
            for table in EXPLICIT_IDS:
                connection.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                    )
                )
            connection.commit()
        # Settled before copies are made: no autovacuum is left to do on them, and
        # every copy starts with the same statistics and visibility map.
        with engine.connect().execution_options(
            isolation_level="AUTOCOMMIT"
        ) as connection:
            started = time.perf_counter()
            connection.execute(sa.text("VACUUM ANALYZE"))
            timings["vacuum_analyze"] = time.perf_counter() - started
    finally:
        engine.dispose()
    return {name: round(seconds, 2) for name, seconds in timings.items()}
