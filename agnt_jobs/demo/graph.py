"""Demo data for the knowledge graph: its entities and edges as the last hourly
``rebuild_entity_graph`` left them, plus the hand-made part.

Derived: an entity per venue, per category and per user with a completed visit;
``visited`` (user to venue, weight = visits), ``affinity`` (user to category, the
user's share of visits) and ``co_visited`` (venue to venue, users who visited both)
edges, computed from the bookings completed before the top of the last hour, by the
job's own rules. Visits completed since (and the bookings mark_completed_bookings
has still to complete) are the next rebuild's work.

Hand-made (``manual``): an entity per Bali area, a ``located_in`` edge from each
venue to its area, and ``partner_of`` edges an operator drew between some venues;
the rebuild never touches them.

The co-visit edges are the bulk (about 1.3 million at scale 100): each chunk of
venues pairs its visitors' other venues through the unique (src, dst) index.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from agnt_jobs.demo.core import PLACES
from agnt_jobs.demo.seeders import Plan, in_chunks, next_id, seeder, sql_array

# The last hourly rebuild (a minute of slack for its run).
BUILT_AT = "date_trunc('hour', CAST(:at AS timestamptz) - interval '1 minute')"


def visits(joins: str = "") -> str:
    """FROM and WHERE of the completed visits that rebuild saw, by users
    ``:lo``..``:hi`` (not deleted by then), with ``joins`` added."""
    return f"""
    FROM bookings AS b
    JOIN users AS u ON u.id = b.user_id
      AND (u.deleted_at IS NULL OR u.deleted_at >= {BUILT_AT})
    {joins}
    WHERE b.status = 'COMPLETED' AND b.status_changed_at < {BUILT_AT}
      AND b.user_id BETWEEN :lo AND :hi
    """


USER_ENTITY = "JOIN entities AS ue ON ue.user_id = b.user_id AND ue.kind = 'user'"

VENUE_ENTITIES = f"""
INSERT INTO entities (kind, key, label, source, venue_id, created_at)
SELECT 'venue', v.id::text, v.name, 'derived', v.id, {BUILT_AT}
FROM venues AS v WHERE v.id BETWEEN :lo AND :hi
ORDER BY v.id
"""

CATEGORY_ENTITIES = f"""
INSERT INTO entities (kind, key, label, source, created_at)
SELECT DISTINCT ON (lower(btrim(category))) 'category', lower(btrim(category)),
       btrim(category), 'derived', {BUILT_AT}
FROM venues WHERE coalesce(btrim(category), '') <> ''
ORDER BY lower(btrim(category)), id
ON CONFLICT (kind, key) DO NOTHING
"""

AREA_ENTITIES = f"""
INSERT INTO entities (kind, key, label, source, created_at)
SELECT 'area', lower(replace(p, ' ', '-')), p, 'manual', :at - interval '400 days'
FROM unnest({sql_array(PLACES)}) WITH ORDINALITY AS a (p, n)
ORDER BY n
ON CONFLICT (kind, key) DO NOTHING
"""

USER_ENTITIES = f"""
INSERT INTO entities (kind, key, source, user_id, created_at)
SELECT DISTINCT 'user', b.user_id::text, 'derived', b.user_id, {BUILT_AT}
{visits()}
ORDER BY b.user_id
"""

VISITED = f"""
INSERT INTO entity_edges (src_id, dst_id, kind, source, weight, meta, created_at,
                          updated_at)
SELECT ue.id, ve.id, 'visited', 'derived', count(*),
       jsonb_build_object('visits', count(*), 'last_visit_at', max(b.slot_end)),
       {BUILT_AT}, {BUILT_AT}
{
    visits(
        USER_ENTITY + " JOIN entities AS ve ON ve.venue_id = b.venue_id"
        " AND ve.kind = 'venue'"
    )
}
GROUP BY ue.id, ve.id
ORDER BY ue.id, ve.id
"""

# From the visited edges of user entities :lo..:hi: the share of each user's visits
# that went to each category.
AFFINITY = f"""
INSERT INTO entity_edges (src_id, dst_id, kind, source, weight, meta, created_at,
                          updated_at)
SELECT e.src_id, ce.id, 'affinity', 'derived',
       round(sum(e.weight)::numeric / sum(sum(e.weight)::numeric)
                 OVER (PARTITION BY e.src_id), 4),
       jsonb_build_object('visits', sum(e.weight)::bigint), {BUILT_AT}, {BUILT_AT}
FROM entity_edges AS e
JOIN entities AS ve ON ve.id = e.dst_id
JOIN venues AS v ON v.id = ve.venue_id
JOIN entities AS ce ON ce.kind = 'category' AND ce.key = lower(btrim(v.category))
WHERE e.kind = 'visited' AND e.source = 'derived' AND e.src_id BETWEEN :lo AND :hi
GROUP BY e.src_id, ce.id
ORDER BY e.src_id, ce.id
"""

# Venue pairs, lower entity id first, from the visited edges: :lo..:hi are venue
# entity ids on the lower side.
CO_VISITED = f"""
INSERT INTO entity_edges (src_id, dst_id, kind, source, weight, meta, created_at,
                          updated_at)
SELECT a.dst_id, b.dst_id, 'co_visited', 'derived', count(*), NULL,
       {BUILT_AT}, {BUILT_AT}
FROM entity_edges AS a
JOIN entity_edges AS b ON b.src_id = a.src_id AND b.kind = 'visited'
  AND b.source = 'derived' AND b.dst_id > a.dst_id
WHERE a.kind = 'visited' AND a.source = 'derived' AND a.dst_id BETWEEN :lo AND :hi
GROUP BY a.dst_id, b.dst_id
ORDER BY a.dst_id, b.dst_id
"""

MANUAL_EDGES = f"""
INSERT INTO entity_edges (src_id, dst_id, kind, source, weight, meta, created_at)
SELECT ve.id, ae.id, 'located_in', 'manual', 1, NULL, v.created_at
FROM venues AS v
JOIN entities AS ve ON ve.venue_id = v.id AND ve.kind = 'venue'
JOIN unnest({sql_array(PLACES)}) AS p (name) ON v.name LIKE '% ' || p.name || ' %'
JOIN entities AS ae ON ae.kind = 'area' AND ae.key = lower(replace(p.name, ' ', '-'))
WHERE v.id BETWEEN :lo AND :hi
UNION ALL
SELECT ve.id, pe.id, 'partner_of', 'manual', 1,
       jsonb_build_object('note', 'same owner group'), v.created_at
FROM venues AS v
JOIN entities AS ve ON ve.venue_id = v.id AND ve.kind = 'venue'
JOIN entities AS pe ON pe.venue_id = v.id + 1 AND pe.kind = 'venue'
WHERE v.id BETWEEN :lo AND :hi AND pg_temp.rnd(v.id, 1301) < 0.05
ORDER BY 1, 2, 3
"""


@seeder("graph", tables=("entities", "entity_edges"), after=("bookings",))
def fill(connection: Connection, plan: Plan) -> dict[str, int]:
    venues, users = plan.ranges["venues"], plan.ranges["users"]
    first_entity = next_id(connection, "entities")
    entities = in_chunks(connection, plan, VENUE_ENTITIES, *venues)
    venue_entities = (first_entity, next_id(connection, "entities") - 1)
    entities += in_chunks(connection, plan, CATEGORY_ENTITIES, 0, 0)
    entities += in_chunks(connection, plan, AREA_ENTITIES, 0, 0)
    # Users by id range; ~5 completed visits each.
    per_chunk = max(plan.chunk // 5, 1)
    first_user_entity = next_id(connection, "entities")
    entities += in_chunks(connection, plan, USER_ENTITIES, *users, chunk=per_chunk)
    user_entities = (first_user_entity, next_id(connection, "entities") - 1)
    connection.exec_driver_sql("ANALYZE entities")
    edges = in_chunks(connection, plan, VISITED, *users, chunk=per_chunk)
    connection.exec_driver_sql("ANALYZE entity_edges")
    edges += in_chunks(connection, plan, AFFINITY, *user_entities, chunk=per_chunk)
    connection.exec_driver_sql("ANALYZE entity_edges")
    # A venue pairs with up to every other one: a few hundred venues per chunk.
    edges += in_chunks(connection, plan, CO_VISITED, *venue_entities, chunk=200)
    edges += in_chunks(connection, plan, MANUAL_EDGES, *venues)
    return {"entities": entities, "entity_edges": edges}
