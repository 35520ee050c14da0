"""Dreaming: the agent's nightly and weekly reflection on what users told it.

light_dreaming (02:00 WITA daily) writes one reflection per user who talked with the
agent in the last 24 hours; deep_dreaming (Mon 04:00 WITA) consolidates each user's
week of reflections and memories into one agent insight and merges duplicate memories.
Both walk users in chunks (``agnt_jobs.walk.staged_ids``), stream each chunk's rows, and
write one row per user and period under a unique key, so a second run, or a re-run
after a crash, only does the users still missing.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from agnt_jobs import logs
from agnt_jobs.clients.llm import Assist
from agnt_jobs.models.knowledge import AgentInsight, Reflection
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job
from agnt_jobs.settings import Settings
from agnt_jobs.timeutil import day, iso_week, zone
from agnt_jobs.walk import staged_ids
from cron.clustering import duplicate_groups
from cron.reflection import (
    DayReflection,
    Memory,
    Message,
    consolidate,
    reflect,
    reflection_prompt,
)
from cron.text import idf, tokens

logger = logging.getLogger(__name__)

# The models' tables, typed as tables (the declarative __table__ is a FromClause).
REFLECTIONS = cast(sa.Table, Reflection.__table__)
INSIGHTS = cast(sa.Table, AgentInsight.__table__)

STREAM = {"stream_results": True, "yield_per": 500}

REFLECTION_SYSTEM = (
    "You write a private note for a concierge agent about one user's recent "
    "conversations with it: what they were interested in, what they like or avoid, "
    "and what is still open. At most three sentences, plain English, no greeting."
)

# Every user message of the window, for the background document frequencies.
WINDOW_MESSAGES = sa.text(
    """
    SELECT text FROM interactions
    WHERE created_at >= :start AND created_at < :end AND role = 'user'
    """
)

USERS_TO_REFLECT = """
SELECT DISTINCT i.user_id FROM interactions i
WHERE i.created_at >= :start AND i.created_at < :end
  AND NOT EXISTS (SELECT 1 FROM reflections r
                  WHERE r.user_id = i.user_id AND r.reflection_date = :day)
"""

RECENT_MESSAGES = sa.text(
    """
    SELECT user_id, id, conversation_id, role, text, total FROM (
      SELECT user_id, id, conversation_id, role, text, created_at,
             row_number() OVER w AS newest,
             count(*) OVER (PARTITION BY user_id) AS total
      FROM interactions
      WHERE user_id = ANY(:user_ids) AND created_at >= :start AND created_at < :end
      WINDOW w AS (PARTITION BY user_id ORDER BY created_at DESC, id DESC)
    ) recent
    WHERE newest <= :per_user
    ORDER BY user_id, created_at, id
    """
)

USERS_TO_CONSOLIDATE = """
SELECT DISTINCT r.user_id FROM reflections r
WHERE r.reflection_date >= :monday AND r.reflection_date < :next_monday
  AND NOT EXISTS (SELECT 1 FROM agent_insights a
                  WHERE a.user_id = r.user_id AND a.iso_week = :week)
"""

WEEK_REFLECTIONS = sa.text(
    """
    SELECT user_id, reflection_date, topics, preferences, open_loops
    FROM reflections
    WHERE user_id = ANY(:user_ids)
      AND reflection_date >= :monday AND reflection_date < :next_monday
    ORDER BY user_id, reflection_date
    """
)

LIVE_MEMORIES = sa.text(
    """
    SELECT user_id, id, kind, content, pinned, created_at, last_accessed_at FROM (
      SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY id DESC) AS newest
      FROM memories
      WHERE user_id = ANY(:user_ids) AND merged_into_id IS NULL
    ) live
    WHERE newest <= :per_user
    ORDER BY user_id, id
    """
)

# Point each duplicate at its survivor, and carry the duplicates' last use over to
# the survivor so memory eviction judges the merged memory by its latest use.
MERGE_MEMORIES = sa.text(
    """
    WITH pairs AS (
      SELECT * FROM unnest(CAST(:duplicates AS bigint[]), CAST(:survivors AS bigint[]))
        AS p(duplicate, survivor)
    ), merged AS (
      UPDATE memories m SET merged_into_id = p.survivor
      FROM pairs p
      WHERE m.id = p.duplicate AND m.merged_into_id IS NULL
      RETURNING p.survivor, coalesce(m.last_accessed_at, m.created_at) AS used_at
    ), carried AS (
      UPDATE memories s SET last_accessed_at = x.used_at
      FROM (SELECT survivor, max(used_at) AS used_at FROM merged GROUP BY survivor) x
      WHERE s.id = x.survivor
        AND coalesce(s.last_accessed_at, s.created_at) < x.used_at
      RETURNING s.id
    )
    SELECT (SELECT count(*) FROM merged), (SELECT count(*) FROM carried)
    """
)


def _background(connection: sa.Connection, params: dict[str, Any]) -> dict[str, float]:
    """Idf of every term in the window's user messages (one streamed pass; memory
    grows with the vocabulary, not with the messages)."""
    frequencies: Counter[str] = Counter()
    count = 0
    for text in connection.execute(
        WINDOW_MESSAGES, params, execution_options=STREAM
    ).scalars():
        frequencies.update(set(tokens(text)))
        count += 1
    connection.commit()
    return idf(frequencies, count)


def _by_user(rows: Iterable[Any]) -> Iterator[tuple[int, list[Any]]]:
    for user_id, group in itertools.groupby(rows, key=lambda row: row.user_id):
        yield user_id, list(group)


@job("light_dreaming")
def light_dreaming(ctx: RunContext) -> JobResult:
    """For every user with interactions in the ``light_dreaming_window_hours`` (24h)
    before the tick, write one reflection (topics, preferences, open loops, summary)
    for the WITA date before the tick's (the 02:00 run reflects on the day that just
    ended): one per user per date, ever; a user who already has one is skipped.

    The most recent ``dreaming_max_messages_per_user`` messages are read. With an LLM
    configured its summary replaces the extractive one; when it fails the extractive
    summary is kept and counted in ``llm_fallbacks``. A reflection is not rewritten
    later, even if the LLM comes back.
    """
    settings = ctx.settings
    yesterday = day(ctx.tick, zone(settings.business_timezone), -1)
    params = {
        "start": ctx.tick - timedelta(hours=settings.light_dreaming_window_hours),
        "end": ctx.tick,
        "day": date.fromisoformat(yesterday.label),
    }
    written = users = 0
    with ctx.engine.connect() as connection, Assist.from_settings(settings) as llm:
        background = _background(connection, params)
        for user_ids in staged_ids(
            connection,
            "light_dreaming_users",
            USERS_TO_REFLECT,
            params,
            settings.job_chunk_size,
        ):
            drafts = []
            rows = connection.execute(
                RECENT_MESSAGES,
                {
                    **params,
                    "user_ids": user_ids,
                    "per_user": settings.dreaming_max_messages_per_user,
                },
                execution_options=STREAM,
            )
            for user_id, group in _by_user(rows):
                messages = [
                    Message(r.id, r.conversation_id, r.role, r.text) for r in group
                ]
                text = reflect(messages, settings.reflection_max_topics, background)
                prompt = reflection_prompt(messages) if llm.enabled else None
                drafts.append((user_id, group[0].total, text, prompt))
            connection.commit()  # no transaction stays open across LLM calls
            values = []
            for user_id, total, text, prompt in drafts:
                better = llm.complete(REFLECTION_SYSTEM, prompt) if prompt else None
                values.append(
                    {
                        "user_id": user_id,
                        "reflection_date": params["day"],
                        "topics": text.topics,
                        "preferences": text.preferences,
                        "open_loops": text.open_loops,
                        "summary": better or text.summary,
                        "interaction_count": total,
                        "method": "llm" if better else "extractive",
                    }
                )
            users += len(values)
            written += _insert_new(connection, REFLECTIONS, values)
            connection.commit()
        result = {
            "date": params["day"].isoformat(),
            "users": users,
            "reflections_written": written,
            **llm.summary(),
        }
    logger.info("light dreaming done", extra=logs.event("light_dreaming", **result))
    return result


def _insert_new(
    connection: sa.Connection, table: sa.Table, values: list[dict[str, Any]]
) -> int:
    """Insert the rows whose unique key is new; return how many were."""
    if not values:
        return 0
    statement = insert(table).values(values).on_conflict_do_nothing()
    return len(connection.execute(statement.returning(table.c.id)).all())


def _memory_plan(
    memories: list[Memory], threshold: float
) -> list[tuple[int, list[int]]]:
    """(survivor, duplicates) per group of near-identical memories of one kind. The
    survivor is a pinned one if any is pinned, else the oldest."""
    plan: list[tuple[int, list[int]]] = []
    ordered = sorted(memories, key=lambda m: (m.kind, not m.pinned, m.created_at, m.id))
    for _, same_kind in itertools.groupby(ordered, key=lambda m: m.kind):
        items = [(m.id, m.content) for m in same_kind]
        plan.extend(
            (group[0], group[1:]) for group in duplicate_groups(items, threshold)
        )
    return plan


@job("deep_dreaming")
def deep_dreaming(ctx: RunContext) -> JobResult:
    """For every user with reflections in the ISO week before the tick's (the Monday
    run consolidates the week that just ended), write one agent insight for that week
    (recurring topics, preferences, open loops, the memories the week added) and merge
    the user's duplicate memories: one insight per user per ISO week, ever.

    Duplicates are live memories of one kind whose TF-IDF cosine similarity reaches
    ``memory_merge_similarity``; each points at its survivor through
    ``merged_into_id`` (kept for audit, never deleted here). The insight and the
    merges of a user commit together, so a re-run never merges twice.
    """
    settings = ctx.settings
    tz = zone(settings.business_timezone)
    week = iso_week(ctx.tick, tz, -1)
    params = {
        "week": week.label,
        "monday": week.start.astimezone(tz).date(),
        "next_monday": week.end.astimezone(tz).date(),
    }
    insights = merged = users = 0
    with ctx.engine.connect() as connection:
        for user_ids in staged_ids(
            connection,
            "deep_dreaming_users",
            USERS_TO_CONSOLIDATE,
            params,
            settings.job_chunk_size,
        ):
            chunk = {**params, "user_ids": user_ids}
            days = _week_reflections(connection, chunk)
            values, plans = [], {}
            for user_id, memories in _live_memories(connection, chunk, settings):
                plans[user_id] = _memory_plan(
                    memories, settings.memory_merge_similarity
                )
                new = [m for m in memories if week.start <= m.created_at < week.end]
                text = consolidate(
                    days.get(user_id, []), new, settings.reflection_max_topics
                )
                values.append(
                    {
                        "user_id": user_id,
                        "iso_week": week.label,
                        "week_start": params["monday"],
                        "topics": text.topics,
                        "preferences": text.preferences,
                        "open_loops": text.open_loops,
                        "summary": text.summary,
                        "reflection_count": text.reflection_count,
                        "memories_merged": sum(len(d) for _, d in plans[user_id]),
                    }
                )
            users += len(values)
            claimed = _claim_insights(connection, values)
            insights += len(claimed)
            merged += _merge(connection, {u: plans[u] for u in claimed})
            connection.commit()
    result = {
        "week": week.label,
        "users": users,
        "insights_written": insights,
        "memories_merged": merged,
    }
    logger.info("deep dreaming done", extra=logs.event("deep_dreaming", **result))
    return result


def _week_reflections(
    connection: sa.Connection, chunk: dict[str, Any]
) -> dict[int, list[DayReflection]]:
    """The chunk's users' daily reflections of the week, by user."""
    days: dict[int, list[DayReflection]] = {}
    for row in connection.execute(WEEK_REFLECTIONS, chunk):
        days.setdefault(row.user_id, []).append(
            DayReflection(
                row.reflection_date.isoformat(),
                row.topics,
                row.preferences,
                row.open_loops,
            )
        )
    return days


def _live_memories(
    connection: sa.Connection, chunk: dict[str, Any], settings: Settings
) -> Iterator[tuple[int, list[Memory]]]:
    """Each user of the chunk, in order, with their live memories (most recent
    ``deep_dreaming_max_memories_per_user``), streamed: one user's in hand at a
    time."""
    rows = connection.execute(
        LIVE_MEMORIES,
        {**chunk, "per_user": settings.deep_dreaming_max_memories_per_user},
        execution_options=STREAM,
    )
    # Both ordered by user: walk them side by side.
    groups = _by_user(rows)
    pending = next(groups, None)
    for user_id in chunk["user_ids"]:
        mine: list[Any] = []
        if pending is not None and pending[0] == user_id:
            mine, pending = pending[1], next(groups, None)
        yield (
            user_id,
            [
                Memory(
                    r.id, r.kind, r.content, r.pinned, r.created_at, r.last_accessed_at
                )
                for r in mine
            ],
        )


def _merge(
    connection: sa.Connection, plans: dict[int, list[tuple[int, list[int]]]]
) -> int:
    """Point each duplicate at its survivor, for the users whose insight this run
    wrote; how many memories were merged."""
    pairs = [
        (duplicate, survivor)
        for plan in plans.values()
        for survivor, duplicates in plan
        for duplicate in duplicates
    ]
    if not pairs:
        return 0
    return int(
        connection.execute(
            MERGE_MEMORIES,
            {
                "duplicates": [d for d, _ in pairs],
                "survivors": [s for _, s in pairs],
            },
        ).one()[0]
    )


def _claim_insights(
    connection: sa.Connection, values: list[dict[str, Any]]
) -> set[int]:
    """Insert the insights; the users whose insight this run wrote (a concurrent run
    that wrote one first keeps it, and its merges)."""
    if not values:
        return set()
    table = INSIGHTS
    statement = insert(table).values(values).on_conflict_do_nothing()
    return set(connection.execute(statement.returning(table.c.user_id)).scalars())
