"""wiki_reconcile: bring the fleet wiki pages in line with the fleet delta log.

The log's entries are read in id order from the live table and its archive together
(rotate_delta_log moves past weeks into the archive, keeping ids, at Sun 04:30 WITA,
half an hour before this job), from the id after ``fleet_wiki_cursor.last_delta_id``.
Each chunk of entries is applied and the cursor advanced in one transaction, under
the cursor row's lock, so a crash or a second copy never applies an entry twice, and
an entry is found whichever table it sits in when its chunk is read.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from agnt_jobs import logs
from agnt_jobs.checkpoint import checkpoint
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job

logger = logging.getLogger(__name__)

ENSURE_CURSOR = sa.text(
    "INSERT INTO fleet_wiki_cursor (id, last_delta_id) VALUES (1, 0) "
    "ON CONFLICT (id) DO NOTHING"
)
LOCK_CURSOR = sa.text(
    "SELECT last_delta_id FROM fleet_wiki_cursor WHERE id = 1 FOR UPDATE"
)
MOVE_CURSOR = sa.text(
    "UPDATE fleet_wiki_cursor SET last_delta_id = :id, updated_at = now() WHERE id = 1"
)

# Both tables in one statement (one snapshot): an entry rotated between two chunks
# is found in the archive; DISTINCT ON keeps one copy should a rotation ever leave an
# entry in both for a moment.
NEXT_ENTRIES = sa.text(
    """
    SELECT DISTINCT ON (id) id, created_at, agent_id, page_slug, action, title,
           content, archived
    FROM (
      (SELECT id, created_at, agent_id, page_slug, action, title, content,
              false AS archived
       FROM fleet_delta_log WHERE id > :after ORDER BY id LIMIT :limit)
      UNION ALL
      (SELECT id, created_at, agent_id, page_slug, action, title, content,
              true AS archived
       FROM fleet_delta_log_archive WHERE id > :after ORDER BY id LIMIT :limit)
    ) entries
    ORDER BY id, archived
    LIMIT :limit
    """
)

PAGE = sa.text(
    "SELECT last_delta_id, retired_at FROM fleet_wiki_pages WHERE slug = :slug "
    "FOR UPDATE"
)
CREATE_PAGE = sa.text(
    """
    INSERT INTO fleet_wiki_pages
      (slug, title, content, created_at, updated_at, last_delta_id, last_agent_id)
    VALUES (:slug, :title, :content, :at, :at, :id, :agent_id)
    """
)
# A create or update without a title or content keeps the page's current one.
UPDATE_PAGE = sa.text(
    """
    UPDATE fleet_wiki_pages SET
      title = coalesce(:title, title), content = coalesce(:content, content),
      retired_at = CASE WHEN :revive THEN NULL ELSE retired_at END,
      updated_at = :at, last_delta_id = :id, last_agent_id = :agent_id
    WHERE slug = :slug
    """
)
RETIRE_PAGE = sa.text(
    """
    UPDATE fleet_wiki_pages SET retired_at = coalesce(retired_at, :at),
      updated_at = :at, last_delta_id = :id, last_agent_id = :agent_id
    WHERE slug = :slug
    """
)


def _apply(connection: sa.Connection, entry: Any) -> str:
    """Apply one entry to its page; name what it did, for the run's counts.

    ``create`` makes the page, or revives a retired one; ``update`` edits it, and
    makes it when its create was never seen (a retired page stays retired);
    ``retire`` marks it retired (a retire for a page never seen changes nothing). An
    entry older than the last one applied to the page is superseded.
    """
    params = {
        "slug": entry.page_slug,
        "title": entry.title,
        "content": entry.content,
        "at": entry.created_at,
        "id": entry.id,
        "agent_id": entry.agent_id,
    }
    page = connection.execute(PAGE, params).first()
    if page is None:
        if entry.action == "retire":
            return "retires_of_unknown_pages"
        connection.execute(CREATE_PAGE, params)
        return "pages_created"
    if page.last_delta_id >= entry.id:
        return "entries_superseded"
    if entry.action == "retire":
        connection.execute(RETIRE_PAGE, params)
        return "pages_retired"
    revive = entry.action == "create"
    connection.execute(UPDATE_PAGE, {**params, "revive": revive})
    return "pages_revived" if revive and page.retired_at else "pages_updated"


@job("wiki_reconcile")
def wiki_reconcile(ctx: RunContext) -> JobResult:
    """Apply every fleet delta-log entry (live or archived) after the cursor, in id
    order, to the fleet wiki pages (create, update, retire: see ``_apply``) and
    advance the cursor. A page remembers the last entry applied to it and ignores
    older ones. Idempotent: a second run finds nothing after the cursor.

    Entries younger than ``wiki_delta_settle_seconds`` (5 min) stop the run: ids are
    handed out before commit, so a slightly older id may still be on its way, and the
    cursor must never pass it. Scheduled Sun 05:00 WITA, after rotate_delta_log.
    """
    settings = ctx.settings
    settle_before = ctx.now - timedelta(seconds=settings.wiki_delta_settle_seconds)
    counts: Counter[str] = Counter()
    applied = from_archive = deferred = 0
    with ctx.engine.connect() as connection:
        connection.execute(ENSURE_CURSOR)
        connection.commit()
        while True:
            checkpoint()
            cursor = connection.execute(LOCK_CURSOR).scalar_one()
            entries = connection.execute(
                NEXT_ENTRIES, {"after": cursor, "limit": settings.job_chunk_size}
            ).all()
            # Stop at the first unsettled entry, even if later ones look settled.
            settled = next(
                (i for i, e in enumerate(entries) if e.created_at >= settle_before),
                len(entries),
            )
            for entry in entries[:settled]:
                counts[_apply(connection, entry)] += 1
                from_archive += entry.archived
            if settled:
                cursor = entries[settled - 1].id
                connection.execute(MOVE_CURSOR, {"id": cursor})
            connection.commit()
            applied += settled
            deferred = len(entries) - settled
            if deferred or len(entries) < settings.job_chunk_size:
                break
    result = {
        "entries_applied": applied,
        "entries_from_archive": from_archive,
        "entries_deferred": deferred,
        **dict(sorted(counts.items())),
        "cursor": cursor,
    }
    logger.info("fleet wiki reconciled", extra=logs.event("wiki_reconcile", **result))
    return result
