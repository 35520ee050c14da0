"""rebuild_entity_graph: recompute the derived edges of the knowledge graph from
completed bookings and swap them in atomically.

Derived edges:
* ``visited`` user -> venue, weight = completed visits, meta: visits, last visit;
* ``co_visited`` venue -> venue (stored once, lower entity id first), weight = users
  who completed a visit at both;
* ``affinity`` user -> category, weight = the user's share of their completed visits
  to venues of that category (0..1), meta: visits.

The build runs in chunks into a temporary staging table of the job's own connection
(each chunk a short transaction; nothing but the connection sees it), then one
transaction makes ``entity_edges`` equal to it: derived edges that are gone are
deleted, changed ones updated, new ones inserted. Readers see either the whole old
set or the whole new set, and unchanged edges are not rewritten, so an hourly run on
a stable graph writes nothing. Hand-made (``manual``) edges are never touched.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from agnt_jobs import logs
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job
from agnt_jobs.walk import id_ranges

logger = logging.getLogger(__name__)

# One rebuild at a time: a second one (a retry overlapping a slow run) skips.
LOCK_KEY = 0x67726170  # "grap"

CATEGORY_KEY = "lower(btrim(v.category))"

ENSURE_VENUES = sa.text(
    """
    INSERT INTO entities (kind, key, label, source, venue_id)
    SELECT 'venue', v.id::text, v.name, 'derived', v.id FROM venues v
    WHERE v.id >= :low AND v.id < :high
    ON CONFLICT (kind, key) DO UPDATE
      SET label = EXCLUDED.label, venue_id = EXCLUDED.venue_id
    WHERE (entities.label, entities.venue_id)
      IS DISTINCT FROM (EXCLUDED.label, EXCLUDED.venue_id)
    """
)

ENSURE_CATEGORIES = sa.text(
    f"""
    INSERT INTO entities (kind, key, label, source)
    SELECT DISTINCT ON ({CATEGORY_KEY}) 'category', {CATEGORY_KEY}, btrim(v.category),
           'derived'
    FROM venues v WHERE coalesce(btrim(v.category), '') <> ''
    ORDER BY {CATEGORY_KEY}, v.id
    ON CONFLICT (kind, key) DO NOTHING
    """
)

ENSURE_USERS = sa.text(
    """
    INSERT INTO entities (kind, key, source, user_id)
    SELECT DISTINCT 'user', b.user_id::text, 'derived', b.user_id FROM bookings b
    JOIN users u ON u.id = b.user_id AND u.deleted_at IS NULL
    WHERE b.status = 'COMPLETED' AND b.user_id >= :low AND b.user_id < :high
    -- a hand-made entity for the same user gets linked, so edges find it
    ON CONFLICT (kind, key) DO UPDATE SET user_id = EXCLUDED.user_id
    WHERE entities.user_id IS NULL
    """
)

CREATE_STAGE = sa.text(
    """
    CREATE TEMP TABLE graph_stage (
      src_id bigint NOT NULL, dst_id bigint NOT NULL, kind text NOT NULL,
      weight double precision NOT NULL, meta jsonb,
      PRIMARY KEY (src_id, kind, dst_id))
    """
)

STAGE_VISITS = sa.text(
    """
    INSERT INTO graph_stage (src_id, dst_id, kind, weight, meta)
    SELECT ue.id, ve.id, 'visited', count(*),
           jsonb_build_object('visits', count(*), 'last_visit_at', max(b.slot_end))
    FROM bookings b
    JOIN users u ON u.id = b.user_id AND u.deleted_at IS NULL
      AND u.id >= :low AND u.id < :high
    JOIN entities ue ON ue.user_id = b.user_id AND ue.kind = 'user'
      AND ue.user_id >= :low AND ue.user_id < :high
    JOIN entities ve ON ve.venue_id = b.venue_id AND ve.kind = 'venue'
    WHERE b.status = 'COMPLETED' AND b.user_id >= :low AND b.user_id < :high
    GROUP BY ue.id, ve.id
    """
)

STAGE_AFFINITY = sa.text(
    f"""
    INSERT INTO graph_stage (src_id, dst_id, kind, weight, meta)
    SELECT ue.id, ce.id, 'affinity',
           round((count(*)::numeric / sum(count(*)) OVER (PARTITION BY ue.id)), 4),
           jsonb_build_object('visits', count(*))
    FROM bookings b
    JOIN users u ON u.id = b.user_id AND u.deleted_at IS NULL
      AND u.id >= :low AND u.id < :high
    JOIN venues v ON v.id = b.venue_id
    JOIN entities ue ON ue.user_id = b.user_id AND ue.kind = 'user'
      AND ue.user_id >= :low AND ue.user_id < :high
    JOIN entities ce ON ce.kind = 'category' AND ce.key = {CATEGORY_KEY}
    WHERE b.status = 'COMPLETED' AND b.user_id >= :low AND b.user_id < :high
    GROUP BY ue.id, ce.id
    """
)

# From the staged visits: each user's venues, paired; a user counts once per pair.
STAGE_CO_VISITS = sa.text(
    """
    INSERT INTO graph_stage (src_id, dst_id, kind, weight, meta)
    SELECT a.dst_id, b.dst_id, 'co_visited', count(*), NULL
    FROM graph_stage a
    JOIN graph_stage b ON b.src_id = a.src_id AND b.kind = 'visited'
      AND b.dst_id > a.dst_id
    WHERE a.kind = 'visited' AND a.src_id >= :low AND a.src_id < :high
    GROUP BY a.dst_id, b.dst_id
    ON CONFLICT (src_id, kind, dst_id) DO UPDATE
      SET weight = graph_stage.weight + EXCLUDED.weight
    """
)

DELETE_GONE = sa.text(
    """
    DELETE FROM entity_edges e
    WHERE e.source = 'derived'
      AND NOT EXISTS (SELECT 1 FROM graph_stage s
                      WHERE s.src_id = e.src_id AND s.kind = e.kind
                        AND s.dst_id = e.dst_id)
    """
)

UPSERT_STAGED = sa.text(
    """
    WITH upserted AS (
      INSERT INTO entity_edges (src_id, dst_id, kind, source, weight, meta, updated_at)
      SELECT s.src_id, s.dst_id, s.kind, 'derived', s.weight, s.meta, now()
      FROM graph_stage s
      -- an entity purged since staging (a deleted user) takes its edges with it
      JOIN entities a ON a.id = s.src_id JOIN entities b ON b.id = s.dst_id
      ON CONFLICT (src_id, dst_id, kind, source) DO UPDATE
        SET weight = EXCLUDED.weight, meta = EXCLUDED.meta, updated_at = now()
        WHERE (entity_edges.weight, entity_edges.meta)
          IS DISTINCT FROM (EXCLUDED.weight, EXCLUDED.meta)
      RETURNING (xmax = 0) AS inserted
    )
    SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)
    FROM upserted
    """
)


def _ensure_entities(connection: sa.Connection, width: int) -> None:
    """The derived entities the edges need: every venue, category and visiting user."""
    for low, high in id_ranges(connection, "venues", "id", width):
        connection.execute(ENSURE_VENUES, {"low": low, "high": high})
        connection.commit()
    connection.execute(ENSURE_CATEGORIES)
    connection.commit()
    for low, high in id_ranges(connection, "bookings", "user_id", width):
        connection.execute(ENSURE_USERS, {"low": low, "high": high})
        connection.commit()


def _stage(connection: sa.Connection, width: int) -> int:
    """Build the whole derived edge set in ``graph_stage``; return its size."""
    connection.execute(sa.text("DROP TABLE IF EXISTS pg_temp.graph_stage"))
    connection.execute(CREATE_STAGE)
    connection.commit()
    for low, high in id_ranges(connection, "bookings", "user_id", width):
        connection.execute(STAGE_VISITS, {"low": low, "high": high})
        connection.execute(STAGE_AFFINITY, {"low": low, "high": high})
        connection.commit()
    # Temp tables are never auto-analysed; the pairing join needs real estimates.
    connection.execute(sa.text("ANALYZE pg_temp.graph_stage"))
    connection.commit()
    for low, high in id_ranges(connection, "pg_temp.graph_stage", "src_id", width):
        connection.execute(STAGE_CO_VISITS, {"low": low, "high": high})
        connection.commit()
    connection.execute(sa.text("ANALYZE pg_temp.graph_stage"))
    staged = connection.execute(sa.text("SELECT count(*) FROM graph_stage")).scalar()
    connection.commit()
    return int(staged or 0)


@job("rebuild_entity_graph")
def rebuild_entity_graph(ctx: RunContext) -> JobResult:
    """Recompute every derived edge (visits, co-visits, category affinity) from the
    COMPLETED bookings of users not deleted (a user who asked to leave drops out of
    the graph at once, before the purge) and swap the set in atomically; manual
    edges are untouched. Chunks are ``job_chunk_size`` ids wide. A run that
    finds another rebuild running returns ``{"skipped": 1}``."""
    width = ctx.settings.job_chunk_size
    with ctx.engine.connect() as connection:
        locked = connection.execute(
            sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}
        ).scalar()
        connection.commit()
        if not locked:
            logger.info(
                "another rebuild is running", extra=logs.event("graph_rebuild_skipped")
            )
            return {"skipped": 1}
        try:
            _ensure_entities(connection, width)
            staged = _stage(connection, width)
            # The swap: one transaction, so readers see the old set or the new one.
            deleted = connection.execute(DELETE_GONE).rowcount
            inserted, updated = connection.execute(UPSERT_STAGED).one()
            connection.commit()
        finally:
            connection.rollback()
            connection.execute(sa.text("DROP TABLE IF EXISTS pg_temp.graph_stage"))
            connection.execute(
                sa.text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY}
            )
            connection.commit()
    result = {
        "edges": staged,
        "edges_inserted": inserted,
        "edges_updated": updated,
        "edges_deleted": deleted,
    }
    logger.info("entity graph rebuilt", extra=logs.event("graph_rebuilt", **result))
    return result
