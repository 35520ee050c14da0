"""The demo seeders: each domain registers a function that fills its tables,
and ``seed`` runs them in dependency order on one connection.

A seeder is ``@seeder("name", tables=(...), after=("core",))`` over
``fill(connection, plan) -> {table: rows}``. It writes with set-based
``INSERT ... SELECT FROM generate_series(...)`` in chunks (``in_chunks``), commits
each chunk, and draws every "random" value from ``pg_temp.rnd(id, salt)``: a hash of
the row's id, so the same scale and anchor instant give the same data, run after run.
Ids are explicit (``plan.ranges``), so a later seeder references an earlier one's
rows without reading them back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from agnt_jobs import logs

logger = logging.getLogger(__name__)

# A uniform [0, 1) from (id, salt): Postgres' own 64-bit integer hash, stable across
# versions (hash partitioning depends on it), inlined by the planner.
RND_FUNCTION = """
CREATE OR REPLACE FUNCTION pg_temp.rnd(id bigint, salt bigint) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (hashint8extended(id, salt) & 140737488355327)::float8
             / 140737488355328 $$
"""


# The WITA (``:tz``) calendar date of the anchor instant, and a local wall-clock time
# on a local date as an instant: most seeded times are laid out on local days.
LOCAL_TODAY = "(CAST(:at AS timestamptz) AT TIME ZONE :tz)::date"


def local_instant(day: str, clock: str) -> str:
    """SQL for the instant of local date ``day`` (a date expression) plus ``clock``
    (an interval or time expression) in ``:tz``."""
    return f"((({day}) + ({clock})) AT TIME ZONE :tz)"


class NotEmptyError(Exception):
    """The database already has data in a table the demo would fill."""


@dataclass
class Plan:
    """What every seeder is told: the size, the instant the data is built around,
    and the id ranges earlier seeders used."""

    scale: int
    at: datetime
    tz: str = "Asia/Makassar"
    chunk: int = 100_000
    agent_url: str = "http://127.0.0.1:8790"
    webhook_url: str = "http://127.0.0.1:8791"
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        """Bind parameters every seeding statement may use: ``:at``, ``:tz``, and
        ``:{table}_first`` / ``:{table}_count`` for each range recorded so far."""
        values: dict[str, Any] = {"at": self.at, "tz": self.tz}
        for table, (first, last) in self.ranges.items():
            values[f"{table}_first"] = first
            values[f"{table}_count"] = last - first + 1
        return values


Fill = Callable[[Connection, Plan], dict[str, int]]


@dataclass(frozen=True)
class Seeder:
    name: str
    tables: tuple[str, ...]
    after: tuple[str, ...]
    fill: Fill


SEEDERS: dict[str, Seeder] = {}


def seeder(
    name: str, *, tables: Sequence[str], after: Sequence[str] = ()
) -> Callable[[Fill], Fill]:
    """Register ``fill`` as the seeder ``name`` of ``tables``, run after ``after``."""

    def register(fill: Fill) -> Fill:
        if name in SEEDERS and SEEDERS[name].fill is not fill:
            raise ValueError(f"demo seeder {name!r} is registered twice")
        SEEDERS[name] = Seeder(name, tuple(tables), tuple(after), fill)
        return fill

    return register


def ordered(seeders: dict[str, Seeder] | None = None) -> list[Seeder]:
    """Seeders so that each runs after the ones it names (then by name)."""
    pending = dict(seeders or SEEDERS)
    done: list[Seeder] = []
    while pending:
        ready = sorted(
            name
            for name, s in pending.items()
            if all(dep not in pending for dep in s.after)
        )
        if not ready:
            raise ValueError(f"demo seeders depend on each other: {sorted(pending)}")
        for name in ready:
            missing = [dep for dep in pending[name].after if dep not in SEEDERS]
            if missing:
                raise ValueError(f"demo seeder {name!r} needs unknown {missing}")
            done.append(pending.pop(name))
    return done


def next_id(connection: Connection, table: str) -> int:
    """The first id a new data set in ``table`` gets: after any rows already there
    (``--force`` adds a second data set beside the first)."""
    return int(
        connection.execute(
            sa.text(f"SELECT coalesce(max(id), 0) + 1 FROM {table}")
        ).scalar_one()
    )


def in_chunks(
    connection: Connection,
    plan: Plan,
    statement: str,
    first: int,
    last: int,
    *,
    chunk: int | None = None,
    **params: Any,
) -> int:
    """Run ``statement`` for ids ``:lo``..``:hi`` in chunks of ``chunk`` ids (default
    ``plan.chunk``), committing each; return the rows it inserted."""
    query, total, step = sa.text(statement), 0, chunk or plan.chunk
    values = {**plan.params(), **params}
    for lo in range(first, last + 1, step):
        hi = min(lo + step - 1, last)
        total += connection.execute(query, {**values, "lo": lo, "hi": hi}).rowcount
        connection.commit()
    return total


def sync_identity(connection: Connection, table: str) -> None:
    """Move the id sequence past the explicit ids a seeder inserted."""
    connection.execute(
        sa.text(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"(SELECT coalesce(max(id), 1) FROM {table}))"
        )
    )


def sql_array(values: Sequence[str]) -> str:
    """A SQL text array literal of ``values``."""
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"ARRAY[{quoted}]"


def pick(values: Sequence[str], r: str) -> str:
    """SQL choosing one of ``values`` uniformly by the [0, 1) expression ``r``."""
    return f"({sql_array(values)})[1 + floor({r} * {len(values)})::int]"


def weighted(choices: Mapping[str, float], r: str) -> str:
    """SQL choosing a value by weight with the [0, 1) expression ``r``; the keys are
    SQL expressions (quote literals yourself)."""
    items = list(choices.items())
    scale = sum(weight for _, weight in items)
    cases, cumulative = [], 0.0
    for value, weight in items[:-1]:
        cumulative += weight / scale
        cases.append(f"WHEN {r} < {cumulative:.6f} THEN {value}")
    return f"CASE {' '.join(cases)} ELSE {items[-1][0]} END"


@dataclass(frozen=True)
class Report:
    seeder: str
    rows: dict[str, int]
    seconds: float


def seed(
    engine: Engine,
    plan: Plan,
    *,
    force: bool = False,
) -> list[Report]:
    """Fill the database with ``plan``'s data set. Refuses (``NotEmptyError``) when a
    table any seeder fills already has rows, unless ``force``: then the new data set
    is added beside the old one, with new ids; nothing is ever deleted."""
    chosen = dict(SEEDERS)
    reports: list[Report] = []
    with engine.connect() as connection:
        if not force:
            for s in ordered(chosen):
                for table in s.tables:
                    found = connection.execute(
                        sa.text(f"SELECT EXISTS (SELECT FROM {table})")
                    ).scalar_one()
                    if found:
                        raise NotEmptyError(
                            f"table {table} already has rows: demo seed fills an "
                            "empty database (--force adds a second data set)"
                        )
        connection.execute(sa.text(RND_FUNCTION))
        # Demo data can be made again: no need to wait for each chunk's fsync.
        connection.execute(sa.text("SET synchronous_commit = off"))
        connection.commit()
        for s in ordered(chosen):
            started = time.perf_counter()
            rows = s.fill(connection, plan)
            for table in s.tables:
                connection.execute(sa.text(f"ANALYZE {table}"))
            connection.commit()
            report = Report(s.name, rows, round(time.perf_counter() - started, 2))
            logger.info(
                "demo data seeded",
                extra=logs.event("demo_seeded", seeder=s.name, **rows),
            )
            reports.append(report)
    return reports


# Where a data set's outbound URLs point: the venues' A2A agents and the webhook
# endpoints, each a base URL followed by a path of the seed's own.
_OUTBOUND = {
    "venues": ("agent_endpoint", "/venues/"),
    "webhook_endpoints": ("url", "/hooks/"),
}


def point_at(engine: Engine, agent_url: str, webhook_url: str) -> int:
    """Point the outbound URLs of the data sets already seeded at new bases (the
    stand-ins of this demo run listen on a port of their own each time); the
    rows changed."""
    bases = {"venues": agent_url, "webhook_endpoints": webhook_url}
    changed = 0
    with engine.begin() as connection:
        for table, (column, path) in _OUTBOUND.items():
            changed += connection.execute(
                sa.text(
                    f"UPDATE {table} SET {column} = :base || substr({column}, "
                    f"strpos({column}, :path)) WHERE strpos({column}, :path) > 0"
                ),
                {"base": bases[table], "path": path},
            ).rowcount
    return changed
