"""Demo data for price watchers: users watching products on Shopee, Tokopedia and
Lazada, with a week of prices seen at each six-hourly check.

Per scale unit: 150 watchers, mostly ACTIVE, a few PAUSED or ENDED; each was last
checked at the last six-hourly tick (00, 06, 12, 18 WITA) before the anchor, so the
next ``check_price_watchers`` run checks them all. Prices wander a few percent
around a base; most targets sit well below it, and a tenth sit at it and were hit
(notified once). A marketplace that answers a price 15% below the last one makes
about a third of the armed watchers reach their target.

Product references have each marketplace's shape (Shopee ``shopid.itemid``,
Tokopedia ``shop-domain/product-key``, Lazada an item id); point
``AGNT_SHOPEE_BASE_URL`` and the others at local stand-ins to watch the job work.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from agnt_jobs.demo.seeders import (
    Plan,
    in_chunks,
    next_id,
    pick,
    seeder,
    sync_identity,
    weighted,
)

WATCHERS_PER_SCALE = 150
HISTORY_TICKS = 28  # a week of six-hourly checks

PRODUCTS = (
    "Kopi Kintamani 250g", "Sunscreen SPF50 100ml", "Surfboard wax", "Rattan bag",
    "Sambal matah jar", "Bluetooth speaker", "Yoga mat 6mm", "Snorkel set",
    "Batik shirt", "Coconut oil 1L", "Action camera", "Scooter helmet",
    "Power bank 20000mAh", "Mosquito repellent", "Linen beach towel",
)  # fmt: skip
TOKO_SHOPS = ("kopibali", "balisurfshop", "ubudcraft", "sanurbeauty", "kutagadget")
MARKETPLACE = weighted(
    {"'shopee'": 50, "'tokopedia'": 30, "'lazada'": 20}, "pg_temp.rnd(id, 901)"
)
STATUS = weighted({"'ACTIVE'": 85, "'PAUSED'": 8, "'ENDED'": 7}, "pg_temp.rnd(id, 902)")

# The last six-hourly check before the anchor (a minute of slack for its run).
LAST_TICK = """
((date_trunc('hour', (CAST(:at AS timestamptz) - interval '1 minute') AT TIME ZONE :tz)
  - make_interval(hours => extract(hour FROM (CAST(:at AS timestamptz)
                                              - interval '1 minute') AT TIME ZONE :tz
                                   )::int % 6)) AT TIME ZONE :tz)
"""

# A watcher's price at check k (0 = the last one): its base, give or take 6%.
PRICE = "round(w.base * (0.94 + 0.12 * pg_temp.rnd(w.id * 64 + {k}, 911)) / 100) * 100"

WATCHERS = f"""
INSERT INTO price_watchers (id, user_id, marketplace, product_ref, title,
                            target_price, currency, status, created_at, last_price,
                            last_checked_at, notified_at)
SELECT w.id, w.user_id, w.marketplace, w.ref, w.title,
       CASE WHEN w.hits THEN w.base
            ELSE round(w.base * (0.70 + 0.18 * pg_temp.rnd(w.id, 903)) / 1000) * 1000
       END,
       'IDR', w.status, w.created,
       {PRICE.format(k="w.stopped")},
       {LAST_TICK} - make_interval(hours => 6 * w.stopped)
           + pg_temp.rnd(w.id, 904) * interval '50 seconds',
       CASE WHEN w.hits THEN (
           SELECT {LAST_TICK} - make_interval(hours => 6 * max(k))
                  + interval '40 seconds'
           FROM generate_series(w.stopped, {HISTORY_TICKS - 1}) AS k
           WHERE {PRICE.format(k="k")} <= w.base) END
FROM (
    SELECT id, {MARKETPLACE} AS marketplace, {STATUS} AS status,
           :users_first + floor(pg_temp.rnd(id, 905) * :users_count)::bigint
               AS user_id,
           {pick(PRODUCTS, "pg_temp.rnd(id, 906)")} AS title,
           -- Rp 25,000 to Rp 4,000,000, cheap things more often
           round((25000 + power(pg_temp.rnd(id, 907), 3) * 3975000) / 1000) * 1000
               AS base,
           pg_temp.rnd(id, 908) < 0.1 AS hits,
           :at - interval '8 days' - pg_temp.rnd(id, 909) * interval '80 days'
               AS created,
           CASE WHEN {STATUS} = 'ACTIVE' THEN 0 ELSE 8 END AS stopped
    FROM generate_series(CAST(:lo AS bigint), :hi) AS id
) AS w0
CROSS JOIN LATERAL (
    SELECT w0.*,
           CASE w0.marketplace
               WHEN 'shopee' THEN (100000 + floor(pg_temp.rnd(w0.id, 910) * 500))
                                  || '.' || (2000000 + w0.id)
               WHEN 'tokopedia'
                   THEN {pick(TOKO_SHOPS, "pg_temp.rnd(w0.id, 910)")} || '/'
                        || lower(replace(w0.title, ' ', '-')) || '-' || w0.id
               ELSE (3000000 + w0.id)::text END AS ref
) AS w
"""

HISTORY = f"""
INSERT INTO price_history (watcher_id, price, currency, tick, observed_at)
SELECT w.id, {PRICE.format(k="k")}, 'IDR', t.tick,
       t.tick + pg_temp.rnd(w.id * 64 + k, 912) * interval '50 seconds'
FROM (
    SELECT id, stopped, created_at,
           -- the base again, as WATCHERS drew it
           round((25000 + power(pg_temp.rnd(id, 907), 3) * 3975000) / 1000) * 1000
               AS base
    FROM (SELECT id, created_at, CASE WHEN status = 'ACTIVE' THEN 0 ELSE 8 END
                 AS stopped
          FROM price_watchers WHERE id BETWEEN :lo AND :hi) AS s
) AS w
CROSS JOIN generate_series(0, {HISTORY_TICKS - 1}) AS k
CROSS JOIN LATERAL (
    SELECT {LAST_TICK} - make_interval(hours => 6 * k) AS tick
) AS t
WHERE k >= w.stopped AND t.tick >= w.created_at
ORDER BY w.id, k DESC
"""


@seeder("watchers", tables=("price_watchers", "price_history"), after=("core",))
def fill(connection: Connection, plan: Plan) -> dict[str, int]:
    first = next_id(connection, "price_watchers")
    last = first + WATCHERS_PER_SCALE * plan.scale - 1
    watchers = in_chunks(connection, plan, WATCHERS, first, last)
    sync_identity(connection, "price_watchers")
    history = in_chunks(
        connection, plan, HISTORY, first, last, chunk=plan.chunk // HISTORY_TICKS
    )
    return {"price_watchers": watchers, "price_history": history}
