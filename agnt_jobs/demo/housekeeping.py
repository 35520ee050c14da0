"""Demo data for the housekeeping jobs' tables: the error log and the fleet delta log
with its archive.

Error log: 8 rows per scale unit a day over the last 45 days, from the
reconciliations and billing jobs, so ``prune_error_logs`` (30 days) has two weeks
to delete.

Fleet delta log: the agent fleet reports changes to its shared wiki pages, 150 per
scale unit a week, from the Monday 13 weeks before the anchor's ISO week until the
anchor: 300 pages per scale unit, some edited often, a few retired. As the weekly
rotation (Sun 04:30 WITA) left it, entries from before last week are in the
archive and the rest in the live log, so ``rotate_delta_log`` moves last week's
entries and expires the archive's oldest week. ``wiki.py`` lays the pages out as
wiki_reconcile left them after that Sunday's rotation.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from agnt_jobs.demo.core import PLACES
from agnt_jobs.demo.seeders import (
    Plan,
    in_chunks,
    next_id,
    pick,
    seeder,
    sync_identity,
    weighted,
)

ERRORS_PER_SCALE_DAY = 8
ERROR_DAYS = 45
PAGES_PER_SCALE = 300
DELTAS_PER_SCALE_WEEK = 150
WEEKS = 13  # complete weeks before the anchor's: 12 kept in the archive, 1 to expire

SOURCE = weighted(
    {
        "'reconcile_subscription_state'": 45,
        "'reconcile_fee_status'": 30,
        "'charge_unbilled_usage'": 23,
        "'retry_pending_fees'": 2,
    },
    "pg_temp.rnd(n, 1001)",
)

ERRORS = f"""
INSERT INTO error_log (created_at, source, level, message, context)
SELECT e.at, e.source,
       CASE WHEN e.source = 'retry_pending_fees' THEN 'CRITICAL'
            WHEN e.source = 'reconcile_fee_status' AND e.r < 0.5 THEN 'WARNING'
            ELSE 'ERROR' END,
       CASE e.source
           WHEN 'reconcile_subscription_state'
               THEN 'subscription ' || e.ref || ' (sub_demo_' || e.venue
                    || '): customer differs; left unchanged'
           WHEN 'reconcile_fee_status'
               THEN 'fee ' || e.ref || ' (PAID): partly paid: 1500000 of 3000000 '
                    || 'recorded'
           WHEN 'charge_unbilled_usage'
               THEN 'usage batch ' || e.ref || ' not billed: stripe: '
                    || 'InvalidRequestError: No such customer'
           ELSE 'fee ' || e.ref || ' was charged 2 times: refund pi_demo_x' || e.ref
       END,
       jsonb_build_object('key', e.source || ':' || e.ref, 'venue_id', e.venue)
FROM generate_series(CAST(:lo AS bigint), :hi) AS n
CROSS JOIN LATERAL (
    SELECT {SOURCE} AS source, pg_temp.rnd(n, 1002) AS r,
           :at - pg_temp.rnd(n, 1003) * interval '{ERROR_DAYS} days' AS at,
           1 + floor(pg_temp.rnd(n, 1004) * 5000)::int AS ref,
           :venues_first + floor(pg_temp.rnd(n, 1005) * :venues_count)::bigint
               AS venue
) AS e
ORDER BY e.at, n
"""

TOPICS = (
    "warung guide", "sunset spots", "surf conditions", "vegan menus",
    "temple etiquette", "scooter rental", "rainy season tips", "nightlife",
    "spa prices", "family dining",
)  # fmt: skip
AGENTS = 40
ACTION = weighted(
    {"'update'": 80, "'create'": 15, "'retire'": 5}, "pg_temp.rnd(i, 1011)"
)
# The local Monday that starts the first of the seeded weeks.
FIRST_MONDAY = (
    f"(date_trunc('week', CAST(:at AS timestamptz) AT TIME ZONE :tz)"
    f" - interval '{WEEKS} weeks')"
)
# Entries before this instant are in the archive (last Sunday's rotation).
ARCHIVED_BEFORE = (
    "((date_trunc('week', CAST(:at AS timestamptz) AT TIME ZONE :tz)"
    " - interval '1 week') AT TIME ZONE :tz)"
)

# Entry ``:first + i`` at an even pace from FIRST_MONDAY to the anchor.
DELTAS = f"""
SELECT :delta_first + i AS id, d.at AS created_at,
       'agent-' || lower(replace({pick(PLACES, "pg_temp.rnd(i, 1012)")}, ' ', '-'))
           || '-' || (1 + floor(pg_temp.rnd(i, 1013) * {AGENTS})) AS agent_id,
       d.slug AS page_slug, d.action,
       CASE WHEN d.action <> 'retire' THEN initcap(d.topic) || ': ' || d.place END
           AS title,
       CASE WHEN d.action <> 'retire'
            THEN 'What the fleet knows about ' || d.topic || ' in ' || d.place
                 || ', as of revision ' || i || '.' END AS content,
       jsonb_build_object('page', d.page, 'revision', i,
                          'confidence', round(pg_temp.rnd(i, 1014)::numeric, 2))
           AS meta,
       d.at < {ARCHIVED_BEFORE} AS archived,
       -- the Sunday 04:30 after the entry's week: when it was rotated
       (date_trunc('week', d.at AT TIME ZONE :tz) + interval '13 days 04:30')
           AT TIME ZONE :tz AS archived_at
FROM generate_series(CAST(:lo AS bigint), :hi) AS i
CROSS JOIN LATERAL (
    SELECT :page_base + floor(power(pg_temp.rnd(i, 1015), 1.6) * :pages)::bigint
               AS page
) AS p
CROSS JOIN LATERAL (
    SELECT p.page, {ACTION} AS action,
           {pick(TOPICS, "pg_temp.rnd(p.page, 1016)")} AS topic,
           {pick(PLACES, "pg_temp.rnd(p.page, 1017)")} AS place,
           lower(replace({pick(TOPICS, "pg_temp.rnd(p.page, 1016)")}, ' ', '-'))
               || '-' || p.page AS slug,
           {FIRST_MONDAY} AT TIME ZONE :tz
               + (i + pg_temp.rnd(i, 1018))
                 * (CAST(:at AS timestamptz) - ({FIRST_MONDAY} AT TIME ZONE :tz))
                 / :entries AS at
) AS d
"""

LIVE = f"""
INSERT INTO fleet_delta_log (id, created_at, agent_id, page_slug, action, title,
                             content, meta)
SELECT id, created_at, agent_id, page_slug, action, title, content, meta
FROM ({DELTAS}) AS e
WHERE NOT e.archived
ORDER BY id
"""

ARCHIVE = f"""
INSERT INTO fleet_delta_log_archive (id, created_at, agent_id, page_slug, action,
                                     title, content, meta, archived_at)
SELECT id, created_at, agent_id, page_slug, action, title, content, meta,
       archived_at
FROM ({DELTAS}) AS e
WHERE e.archived
ORDER BY id
"""


@seeder(
    "housekeeping",
    tables=("error_log", "fleet_delta_log", "fleet_delta_log_archive"),
    after=("core",),
)
def fill(connection: Connection, plan: Plan) -> dict[str, int]:
    errors = ERRORS_PER_SCALE_DAY * ERROR_DAYS * plan.scale
    counts = {"error_log": in_chunks(connection, plan, ERRORS, 1, errors)}

    # One id sequence across both tables, after anything in either.
    first = max(
        next_id(connection, "fleet_delta_log"),
        next_id(connection, "fleet_delta_log_archive"),
    )
    entries = DELTAS_PER_SCALE_WEEK * (WEEKS + 1) * plan.scale
    pages = PAGES_PER_SCALE * plan.scale
    params = {
        "delta_first": first,
        "entries": entries,
        "pages": pages,
        "page_base": first,
    }
    counts["fleet_delta_log_archive"] = in_chunks(
        connection, plan, ARCHIVE, 0, entries - 1, **params
    )
    counts["fleet_delta_log"] = in_chunks(
        connection, plan, LIVE, 0, entries - 1, **params
    )
    sync_identity(connection, "fleet_delta_log")
    plan.ranges["fleet_delta_log"] = (first, first + entries - 1)
    return counts
