"""Demo data for the core tables: users, venues and the venues' subscriptions.

Per scale unit: 2,000 users and 40 venues. Users are Bali locals and visitors on
WhatsApp mostly; about half were active in the last two weeks, a third lapsed, a few
never came back or asked to be deleted (some longer ago than the purge window).
Venues are mostly claimed by an owner with a live subscription; a few are suspended
or have flags that disagree with their sources (work for the reconciler).
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

USERS_PER_SCALE = 2_000
VENUES_PER_SCALE = 40

FIRST_NAMES = (
    "Made", "Wayan", "Ketut", "Nyoman", "Putu", "Kadek", "Komang", "Gede", "Ayu",
    "Dewi", "Sari", "Agus", "Budi", "Rina", "Sarah", "Tom", "Lena", "Hiro", "Mia",
    "Lucas", "Emma", "Noah", "Chloe", "Jack", "Olivia", "Ravi", "Anya", "Kenji",
)  # fmt: skip
LAST_NAMES = (
    "Wirawan", "Pratama", "Santoso", "Suardana", "Wijaya", "Adnyana", "Astawa",
    "Smith", "Müller", "Tanaka", "Nguyen", "Brown", "Rossi", "Jensen", "Kim",
)  # fmt: skip
VENUE_WORDS = (
    "Warung", "Kafe", "Bar", "Spa", "Beach Club", "Bistro", "Rooftop", "Kitchen",
)  # fmt: skip
PLACES = (
    "Canggu", "Ubud", "Seminyak", "Uluwatu", "Sanur", "Kuta", "Jimbaran", "Amed",
    "Pererenan", "Berawa", "Legian", "Nusa Dua",
)  # fmt: skip

CHANNEL = weighted(
    {"'whatsapp'": 70, "'telegram'": 15, "'web'": 10, "'email'": 5}, "r10"
)
LAST_ACTIVE = weighted(
    {
        "NULL": 5,  # signed up, never used it
        ":at - r11 * interval '14 days'": 45,
        ":at - interval '14 days' - r11 * interval '76 days'": 35,
        ":at - interval '90 days' - r11 * interval '275 days'": 15,
    },
    "r12",
)
CATEGORY = weighted(
    {"'restaurant'": 50, "'cafe'": 20, "'beach_club'": 10, "'spa'": 10, "'bar'": 10},
    "r3",
)
SUBSCRIPTION_STATUS = weighted(
    {"'active'": 75, "'trialing'": 8, "'past_due'": 5, "'canceled'": 10, "'unpaid'": 2},
    "pg_temp.rnd(v.id, 211)",
)

USERS = f"""
INSERT INTO users (id, display_name, email, phone, channel, channel_address, locale,
                   created_at, last_active_at, notifications_opt_in,
                   marketing_opt_in, deleted_at)
SELECT id, {pick(FIRST_NAMES, "r1")} || ' ' || {pick(LAST_NAMES, "r2")},
       CASE WHEN channel = 'email' OR r3 < 0.4 THEN 'user' || id || '@example.com' END,
       CASE WHEN channel = 'whatsapp' THEN phone END,
       channel,
       CASE WHEN r4 < 0.03 THEN NULL
            WHEN channel = 'whatsapp' THEN phone
            WHEN channel = 'telegram' THEN 'tg:' || (700000000 + id)
            WHEN channel = 'email' THEN 'user' || id || '@example.com'
            ELSE 'web:' || md5(id::text) END,
       CASE WHEN r5 < 0.6 THEN 'id' ELSE 'en' END,
       least(coalesce(active, :at), :at - interval '30 days')
           - r6 * interval '700 days',
       active,
       r7 < 0.92,
       r8 < 0.45,
       CASE WHEN r9 < 0.01 THEN :at - r11 * interval '60 days' END
FROM generate_series(CAST(:lo AS bigint), :hi) AS id
CROSS JOIN LATERAL (
    SELECT pg_temp.rnd(id, 101) AS r1, pg_temp.rnd(id, 102) AS r2,
           pg_temp.rnd(id, 103) AS r3, pg_temp.rnd(id, 104) AS r4,
           pg_temp.rnd(id, 105) AS r5, pg_temp.rnd(id, 106) AS r6,
           pg_temp.rnd(id, 107) AS r7, pg_temp.rnd(id, 108) AS r8,
           pg_temp.rnd(id, 109) AS r9, pg_temp.rnd(id, 110) AS r10,
           pg_temp.rnd(id, 111) AS r11, pg_temp.rnd(id, 112) AS r12,
           '+628' || (1100000000 + id % 900000000) AS phone
) AS r
CROSS JOIN LATERAL (
    SELECT {CHANNEL} AS channel, {LAST_ACTIVE} AS active
) AS c
"""

VENUES = f"""
INSERT INTO venues (id, name, category, owner_user_id, agent_endpoint, is_claimed,
                    suspended_at, created_at)
SELECT id, {pick(VENUE_WORDS, "r1")} || ' ' || {pick(PLACES, "r2")} || ' ' || id,
       {CATEGORY},
       owner, CASE WHEN r4 < 0.85 THEN :agent_url || '/venues/' || id || '/a2a' END,
       owner IS NOT NULL,
       CASE WHEN r5 < 0.02 THEN :at - r6 * interval '90 days' END,
       :at - interval '30 days' - r6 * interval '1000 days'
FROM generate_series(CAST(:lo AS bigint), :hi) AS id
CROSS JOIN LATERAL (
    SELECT pg_temp.rnd(id, 201) AS r1, pg_temp.rnd(id, 202) AS r2,
           pg_temp.rnd(id, 203) AS r3, pg_temp.rnd(id, 204) AS r4,
           pg_temp.rnd(id, 205) AS r5, pg_temp.rnd(id, 206) AS r6,
           CASE WHEN pg_temp.rnd(id, 207) < 0.8
                THEN :users_first + floor(pg_temp.rnd(id, 208) * :users_count)::bigint
           END AS owner
) AS r
"""

SUBSCRIPTIONS = f"""
INSERT INTO subscriptions (venue_id, stripe_customer_id, stripe_subscription_id,
                           status, current_period_end, created_at)
SELECT v.id, 'cus_demo_' || v.id, 'sub_demo_' || v.id,
       {SUBSCRIPTION_STATUS},
       :at + pg_temp.rnd(v.id, 212) * interval '30 days', v.created_at
FROM venues AS v
WHERE v.id BETWEEN :lo AND :hi AND v.is_claimed AND pg_temp.rnd(v.id, 213) < 0.9
"""

# is_active from its sources, except for ~2% left wrong on purpose.
ACTIVE_FLAGS = """
UPDATE venues AS v
SET is_active = (v.is_claimed AND v.suspended_at IS NULL AND EXISTS (
        SELECT 1 FROM subscriptions AS s
        WHERE s.venue_id = v.id AND s.status IN ('trialing', 'active', 'past_due')
    )) <> (pg_temp.rnd(v.id, 221) < 0.02)
WHERE v.id BETWEEN :lo AND :hi
"""


@seeder("core", tables=("users", "venues", "subscriptions"))
def fill(connection: Connection, plan: Plan) -> dict[str, int]:
    users_first = next_id(connection, "users")
    users_last = users_first + USERS_PER_SCALE * plan.scale - 1
    users = in_chunks(connection, plan, USERS, users_first, users_last)
    sync_identity(connection, "users")
    plan.ranges["users"] = (users_first, users_last)

    venues_first = next_id(connection, "venues")
    venues_last = venues_first + VENUES_PER_SCALE * plan.scale - 1
    venues = in_chunks(
        connection, plan, VENUES, venues_first, venues_last, agent_url=plan.agent_url
    )
    sync_identity(connection, "venues")
    plan.ranges["venues"] = (venues_first, venues_last)
    venue_ids = (venues_first, venues_last)
    subscriptions = in_chunks(connection, plan, SUBSCRIPTIONS, *venue_ids)
    in_chunks(connection, plan, ACTIVE_FLAGS, *venue_ids)
    return {"users": users, "venues": venues, "subscriptions": subscriptions}
