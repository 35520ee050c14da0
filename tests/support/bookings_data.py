"""Builders for the booking, A2A and messaging tests: rows inserted with plain SQL,
times relative to an instant the test chooses, and helpers to run a job body the way
the worker does (directly, with a RunContext), several at once, or crashing mid-way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

import agnt_jobs.app  # noqa: F401  (registers every body)
from agnt_jobs.scheduler.bodies import BODIES, JobResult, RunContext
from agnt_jobs.settings import get_settings
from tests.support import rows as rows_
from tests.support.jobs import run_concurrently
from tests.support.rows import execute as execute
from tests.support.rows import insert as insert
from tests.support.rows import rows as rows
from tests.support.rows import scalar as scalar


def utcnow() -> datetime:
    return datetime.now(UTC)


def user(engine: Engine, **values: Any) -> int:
    """Active now and open to marketing, unless ``values`` say otherwise."""
    return rows_.user(
        engine, **{"last_active_at": utcnow(), "marketing_opt_in": True, **values}
    )


def venue(engine: Engine, **values: Any) -> int:
    return rows_.venue(engine, **{"is_active": True, "is_claimed": True, **values})


def booking(
    engine: Engine,
    user_id: int | None,
    venue_id: int,
    status: str,
    start: datetime,
    *,
    minutes: int = 90,
    changed_at: datetime | None = None,
    party_size: int = 2,
) -> int:
    return rows_.booking(
        engine,
        user_id,
        venue_id,
        status,
        start,
        minutes=minutes,
        status_changed_at=changed_at or utcnow(),
        party_size=party_size,
    )


def envelope(engine: Engine, booking_id: int, status: str, **values: Any) -> int:
    with engine.connect() as connection:
        venue_id = connection.execute(
            sa.text("SELECT venue_id FROM bookings WHERE id = :id"), {"id": booking_id}
        ).scalar_one()
    row = {
        "booking_id": booking_id,
        "venue_id": venue_id,
        "status": status,
        "expires_at": utcnow() + timedelta(hours=1),
        **values,
    }
    return insert(engine, "a2a_envelopes", **row)


def response(
    engine: Engine, booking_id: int | None, venue_id: int, decision: str, **values: Any
) -> int:
    row = {
        "booking_id": booking_id,
        "venue_id": venue_id,
        "decision": decision,
        **values,
    }
    return insert(engine, "venue_responses", **row)


def context(
    engine: Engine,
    *,
    now: datetime | None = None,
    tick: datetime | None = None,
    **overrides: Any,
) -> RunContext:
    settings = get_settings()
    if overrides:
        settings = settings.model_copy(update=overrides)
    now = now or utcnow()
    return RunContext(engine=engine, settings=settings, tick=tick or now, now=now)


def run(job_id: str, engine: Engine, **kwargs: Any) -> JobResult:
    return BODIES[job_id](context(engine, **kwargs))


def run_at_once(
    job_id: str, engine: Engine, copies: int = 2, **kwargs: Any
) -> list[JobResult]:
    """Run ``copies`` of a job in threads, started together, as two workers would."""
    return run_concurrently(lambda: run(job_id, engine, **kwargs), copies)


def total(results: list[JobResult], key: str) -> int:
    return sum(result.get(key, 0) for result in results)


class Crash(Exception):
    """The process died here."""


@contextmanager
def crash_on(engine: Engine, fragment: str, after: int = 0) -> Iterator[None]:
    """Make the (after+1)-th statement containing ``fragment`` kill the run, as a
    crash between two chunks would: committed chunks stay, the rest never ran."""
    seen = 0

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal seen
        if fragment in statement:
            seen += 1
            if seen > after:
                raise Crash(fragment)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", before)


@contextmanager
def crash_after_commits(engine: Engine, commits: int) -> Iterator[None]:
    """Make the first statement after ``commits`` commits on ``engine`` kill the run,
    as a process dying there would: what was committed stays, the transaction it was
    in rolls back, nothing after it runs."""
    seen = 0

    def committed(conn: Any) -> None:
        nonlocal seen
        seen += 1

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if seen >= commits:
            raise Crash(f"after {seen} commits")

    event.listen(engine, "commit", committed)
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "commit", committed)


# The send queue's claim: a crash here is one after a job queued its messages and
# before any was delivered.
DELIVERY = "UPDATE send_queue AS s"


def make_sends_due(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE send_queue SET next_attempt_at = now() - interval '1 s' "
                "WHERE status = 'FAILED'"
            )
        )


def sent_keys(engine: Engine, kind: str | None = None) -> list[str]:
    query = "SELECT idempotency_key FROM send_queue WHERE status = 'SENT'"
    if kind:
        query += " AND kind = :kind"
    return sorted(k for (k,) in rows(engine, query + " ORDER BY 1", kind=kind))
