"""Builders of small hand-made data for the heavy jobs' tests: users, venues and
completed bookings, conversation messages, memories and fleet delta-log entries, all
written with plain SQL, plus a RunContext maker."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler.bodies import RunContext
from agnt_jobs.settings import Settings
from tests.support import rows as rows_
from tests.support.rows import execute as execute
from tests.support.rows import rows as rows

# Tue 2026-11-24 02:00 WITA (18:00 UTC the day before): a light_dreaming tick.
LIGHT_TICK = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
# Mon 2026-11-30 04:00 WITA: deep_dreaming's tick for ISO week 2026-W48.
DEEP_TICK = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)


def context(
    engine: Engine,
    settings: Settings,
    tick: datetime,
    now: datetime | None = None,
    **overrides: Any,
) -> RunContext:
    if overrides:
        settings = settings.model_copy(update=overrides)
    return RunContext(engine=engine, settings=settings, tick=tick, now=now or tick)


def user(engine: Engine, name: str = "Ayu", deleted: bool = False) -> int:
    return rows_.user(
        engine,
        display_name=name,
        channel_address=None,
        deleted_at=datetime.now(UTC) if deleted else None,
    )


def venue(engine: Engine, name: str, category: str | None) -> int:
    return rows_.venue(engine, name=name, category=category)


def booking(
    engine: Engine,
    user_id: int,
    venue_id: int,
    status: str = "COMPLETED",
    when: datetime = datetime(2026, 11, 1, 12, tzinfo=UTC),
) -> int:
    return rows_.booking(engine, user_id, venue_id, status, when)


def message(
    engine: Engine,
    user_id: int,
    text: str,
    at: datetime,
    role: str = "user",
    conversation: str = "c1",
    support: bool = False,
) -> int:
    return rows_.scalar(
        engine,
        "INSERT INTO interactions (user_id, conversation_id, role, text, is_support, "
        "created_at) VALUES (:user_id, :conversation, :role, :text, :support, :at) "
        "RETURNING id",
        user_id=user_id,
        conversation=conversation,
        role=role,
        text=text,
        support=support,
        at=at,
    )


def conversation(
    engine: Engine,
    user_id: int,
    turns: Sequence[tuple[str, str]],
    start: datetime,
    conversation: str,
    support: bool = False,
) -> list[int]:
    """Messages ``(role, text)`` one minute apart; their ids."""
    return [
        message(
            engine,
            user_id,
            text,
            start + timedelta(minutes=i),
            role,
            conversation,
            support,
        )
        for i, (role, text) in enumerate(turns)
    ]


def memory(
    engine: Engine,
    user_id: int,
    content: str,
    created_at: datetime,
    kind: str = "fact",
    pinned: bool = False,
    last_accessed_at: datetime | None = None,
) -> int:
    return rows_.scalar(
        engine,
        "INSERT INTO memories (user_id, kind, content, pinned, created_at, "
        "last_accessed_at) VALUES (:user_id, :kind, :content, :pinned, :created_at, "
        ":last_accessed_at) RETURNING id",
        user_id=user_id,
        kind=kind,
        content=content,
        pinned=pinned,
        created_at=created_at,
        last_accessed_at=last_accessed_at,
    )


def reflection(
    engine: Engine,
    user_id: int,
    day: date,
    topics: list[str],
    preferences: Sequence[str] = (),
    open_loops: Sequence[str] = (),
) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO reflections (user_id, reflection_date, topics, "
                "preferences, open_loops, summary, interaction_count, method) VALUES "
                "(:u, :d, CAST(:t AS jsonb), CAST(:p AS jsonb), CAST(:o AS jsonb), "
                "'s', 3, 'extractive')"
            ),
            {
                "u": user_id,
                "d": day,
                "t": json.dumps(topics),
                "p": json.dumps(list(preferences)),
                "o": json.dumps(list(open_loops)),
            },
        )


def delta(
    engine: Engine,
    slug: str,
    action: str,
    at: datetime,
    title: str | None = None,
    content: str | None = None,
    agent: str = "agent-1",
) -> int:
    return rows_.scalar(
        engine,
        "INSERT INTO fleet_delta_log (agent_id, page_slug, action, title, content, "
        "created_at) VALUES (:agent, :slug, :action, :title, :content, :at) "
        "RETURNING id",
        agent=agent,
        slug=slug,
        action=action,
        title=title,
        content=content,
        at=at,
    )


def rotate(engine: Engine, before: datetime) -> int:
    """What rotate_delta_log does: move entries older than ``before`` into the
    archive, same ids, in one transaction."""
    with engine.begin() as connection:
        return connection.execute(
            sa.text(
                """
                WITH moved AS (
                  DELETE FROM fleet_delta_log WHERE created_at < :before RETURNING *
                )
                INSERT INTO fleet_delta_log_archive
                  (id, created_at, agent_id, page_slug, action, title, content, meta)
                SELECT id, created_at, agent_id, page_slug, action, title, content,
                       meta FROM moved
                """
            ),
            {"before": before},
        ).rowcount
