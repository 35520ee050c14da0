"""Demo data for the fleet wiki: the pages as wiki_reconcile left them after last
Sunday's run (05:00 WITA, after the rotation), and its cursor.

The pages are computed from the delta log (``housekeeping.py``) exactly as the job
applies it: every entry up to the last one that had settled by then, in id order.
A page is made by its first create or update, takes the title and content of its
latest create or update, is retired by a retire since its latest create, and
remembers the last entry applied to it. Everything the fleet reported since is the
next ``wiki_reconcile``'s work.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agnt_jobs.demo.housekeeping import PAGES_PER_SCALE
from agnt_jobs.demo.seeders import Plan, in_chunks, seeder

# wiki_reconcile's last run (Sun 05:00 WITA) and its settle window (5 minutes).
LAST_RUN = (
    "((date_trunc('week', CAST(:at AS timestamptz) AT TIME ZONE :tz)"
    " - interval '19 hours') AT TIME ZONE :tz)"
)
SETTLE = "interval '5 minutes'"

CURSOR = f"""
SELECT coalesce(max(id), 0) FROM (
    SELECT id FROM fleet_delta_log
    WHERE id BETWEEN :lo AND :hi AND created_at < {LAST_RUN} - {SETTLE}
    UNION ALL
    SELECT id FROM fleet_delta_log_archive
    WHERE id BETWEEN :lo AND :hi AND created_at < {LAST_RUN} - {SETTLE}
) AS applied
"""

PAGES = """
INSERT INTO fleet_wiki_pages (slug, title, content, created_at, updated_at,
                              retired_at, last_delta_id, last_agent_id)
WITH entries AS (
    SELECT id, created_at, agent_id, page_slug, action, title, content,
           (meta->>'page')::bigint AS page
    FROM fleet_delta_log WHERE id BETWEEN :entries_first AND :cursor
    UNION ALL
    SELECT id, created_at, agent_id, page_slug, action, title, content,
           (meta->>'page')::bigint
    FROM fleet_delta_log_archive WHERE id BETWEEN :entries_first AND :cursor
), made AS (
    -- a retire before a page exists changes nothing
    SELECT page_slug, min(id) AS made_id FROM entries
    WHERE action <> 'retire' AND page BETWEEN :lo AND :hi
    GROUP BY page_slug
), applied AS (
    SELECT e.*, m.made_id,
           max(e.id) FILTER (WHERE e.action = 'create')
               OVER (PARTITION BY e.page_slug) AS last_create_id
    FROM entries AS e JOIN made AS m USING (page_slug)
    WHERE e.id >= m.made_id
)
SELECT page_slug,
       (array_agg(title ORDER BY id DESC) FILTER (WHERE action <> 'retire'))[1],
       (array_agg(content ORDER BY id DESC) FILTER (WHERE action <> 'retire'))[1],
       min(created_at), max(created_at),
       -- the first retire since the page was last (re)created
       min(created_at) FILTER (
           WHERE action = 'retire' AND id > coalesce(last_create_id, made_id)),
       max(id), (array_agg(agent_id ORDER BY id DESC))[1]
FROM applied
GROUP BY page_slug
ORDER BY max(id)
"""

MOVE_CURSOR = f"""
INSERT INTO fleet_wiki_cursor (id, last_delta_id, updated_at)
SELECT 1, :cursor, {LAST_RUN} + interval '4 seconds'
WHERE :cursor > 0
ON CONFLICT (id) DO NOTHING
"""


@seeder(
    "wiki",
    tables=("fleet_wiki_pages", "fleet_wiki_cursor"),
    after=("housekeeping",),
)
def fill(connection: Connection, plan: Plan) -> dict[str, int]:
    first, last = plan.ranges["fleet_delta_log"]
    cursor = connection.execute(
        sa.text(CURSOR), {**plan.params(), "lo": first, "hi": last}
    ).scalar_one()
    # Pages are numbered from the data set's first entry id (housekeeping.py).
    pages = in_chunks(
        connection,
        plan,
        PAGES,
        first,
        first + PAGES_PER_SCALE * plan.scale - 1,
        entries_first=first,
        cursor=cursor,
    )
    cursors = in_chunks(connection, plan, MOVE_CURSOR, 0, 0, cursor=cursor)
    return {"fleet_wiki_pages": pages, "fleet_wiki_cursor": cursors}
