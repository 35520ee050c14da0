"""wiki_reconcile: bring the fleet wiki pages in line with the fleet delta log.

The log's entries are read in id order from the live table and its archive together
(rotate_delta_log moves past weeks into the archive, keeping ids, at Sun 04:30 WITA,
half an hour before this job), from the id after ``fleet_wiki_cursor.last_delta_id``.
Each chunk of entries is applied and the cursor advanced in one transaction, under
the cursor row's lock, so a crash or a second copy never applies an entry twice, and
an entry is found whichever table it sits in when its chunk is read. A chunk reads
its pages once, applies its entries to them in id order in memory, and writes each
page it changed once: a handful of round trips a chunk, not two an entry (the job
is bound by round trips to the database, one per statement).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
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

# The chunk's pages, locked, read once; the chunk is then applied to them in memory
# and each changed page written once (the cursor's lock already keeps a second
# copy out; the page locks keep any other writer from changing them meanwhile).
PAGES = sa.text(
    """
    SELECT slug, last_delta_id, retired_at FROM fleet_wiki_pages
    WHERE slug = ANY(:slugs) ORDER BY slug FOR UPDATE
    """
)
CREATE_PAGE = sa.text(
    """
    INSERT INTO fleet_wiki_pages (slug, title, content, created_at, updated_at,
      retired_at, last_delta_id, last_agent_id)
    VALUES (:slug, :title, :content, :created_at, :at, :retired_at, :id, :agent_id)
    """
)
# A title or content the chunk never set (None) keeps the page's current one.
UPDATE_PAGE = sa.text(
    """
    UPDATE fleet_wiki_pages SET
      title = coalesce(:title, title), content = coalesce(:content, content),
      retired_at = :retired_at, updated_at = :at, last_delta_id = :id,
      last_agent_id = :agent_id
    WHERE slug = :slug
    """
)


@dataclass
class Page:
    """A page as the chunk has left it so far. ``title`` and ``content`` are the
    last ones the chunk set (None: the page keeps what it has); ``created_at`` is
    set for a page the chunk created."""

    last_delta_id: int
    retired_at: datetime | None
    title: str | None = None
    content: str | None = None
    created_at: datetime | None = None
    at: datetime | None = None
    agent_id: str | None = None
    changed: bool = False


def _apply(pages: dict[str, Page], entry: Any) -> str:
    """Apply one entry to its page in ``pages`` (the chunk's pages as applied so
    far; a slug not in it has no page); name what it did, for the run's counts.

    ``create`` makes the page, or revives a retired one; ``update`` edits it, and
    makes it when its create was never seen (a retired page stays retired);
    ``retire`` marks it retired (a retire for a page never seen changes nothing). An
    entry older than the last one applied to the page is superseded. A create or
    update without a title or content keeps the page's current one.
    """
    page = pages.get(entry.page_slug)
    if page is None:
        if entry.action == "retire":
            return "retires_of_unknown_pages"
        page = Page(entry.id, retired_at=None, created_at=entry.created_at)
        pages[entry.page_slug] = page
        outcome = "pages_created"
    elif page.last_delta_id >= entry.id:
        return "entries_superseded"
    elif entry.action == "retire":
        page.retired_at = page.retired_at or entry.created_at
        outcome = "pages_retired"
    elif entry.action == "create":
        outcome = "pages_revived" if page.retired_at else "pages_updated"
        page.retired_at = None
    else:
        outcome = "pages_updated"
    if entry.action != "retire":
        page.title = entry.title if entry.title is not None else page.title
        page.content = entry.content if entry.content is not None else page.content
    page.last_delta_id = entry.id
    page.at = entry.created_at
    page.agent_id = entry.agent_id
    page.changed = True
    return outcome


def _write(connection: sa.Connection, pages: dict[str, Page]) -> None:
    """Write each page the chunk changed, once: new ones in one batch, changed
    ones in another (each batch one pipelined round of statements)."""
    created: list[dict[str, Any]] = []
    updated: list[dict[str, Any]] = []
    for slug, page in pages.items():
        if not page.changed:
            continue
        params = {
            "slug": slug,
            "title": page.title,
            "content": page.content,
            "created_at": page.created_at,
            "at": page.at,
            "retired_at": page.retired_at,
            "id": page.last_delta_id,
            "agent_id": page.agent_id,
        }
        (created if page.created_at is not None else updated).append(params)
    if created:
        connection.execute(CREATE_PAGE, created)
    if updated:
        connection.execute(UPDATE_PAGE, updated)


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
            if settled:
                slugs = sorted({e.page_slug for e in entries[:settled]})
                pages = {
                    row.slug: Page(row.last_delta_id, row.retired_at)
                    for row in connection.execute(PAGES, {"slugs": slugs})
                }
                for entry in entries[:settled]:
                    counts[_apply(pages, entry)] += 1
                    from_archive += entry.archived
                _write(connection, pages)
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
