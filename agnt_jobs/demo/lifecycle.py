"""Demo data for account lifecycle: venue owners' B2B onboarding sessions and the
referral codes users share.

Sessions: every claimed venue has the COMPLETED session its owner set it up with
(some venues claimed long ago have none); per scale unit, 40 more flows of people
signing a venue up: some ACTIVE in the last two days, some ACTIVE but idle for
longer (``mark_abandoned_b2b_sessions``' work), most ABANDONED, many of those
expired more than a week ago (``b2b_session_cleanup``'s work).

Referral codes: 300 per scale unit over the last four months, valid 30 days. A third
were redeemed by another user; the rest expired, or are still running, and those
of a promotion that ended a few hours ago are past expiry but still ACTIVE
(``expire_stale_referrals``' work).

The users who asked to be deleted (``core``) and the venues' derived flags that
drifted are this domain's other due work (purge, venue reconciliation).
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from agnt_jobs.demo.core import PLACES, VENUE_WORDS
from agnt_jobs.demo.seeders import (
    Plan,
    in_chunks,
    pick,
    seeder,
    sql_array,
    weighted,
)

FLOWS_PER_SCALE = 40
REFERRALS_PER_SCALE = 300
SESSION_DAYS = 14  # an onboarding session expires two weeks after it starts
REFERRAL_DAYS = 30
STEPS = ("start", "business", "address", "menu", "payment")

COMPLETED_SESSIONS = f"""
INSERT INTO b2b_onboarding_sessions (user_id, venue_id, status, step, data,
                                     created_at, last_activity_at, expires_at,
                                     completed_at)
SELECT v.owner_user_id, v.id, 'COMPLETED', 'done',
       jsonb_build_object('business_name', v.name, 'category', v.category,
                          'phone', '+62361' || (700000 + v.id)),
       s.started, s.started + s.took, s.started + interval '{SESSION_DAYS} days',
       s.started + s.took
FROM venues AS v
CROSS JOIN LATERAL (
    SELECT v.created_at - interval '2 days' AS started,
           interval '20 minutes' + pg_temp.rnd(v.id, 801) * interval '30 hours' AS took
) AS s
WHERE v.id BETWEEN :lo AND :hi AND v.owner_user_id IS NOT NULL
  AND pg_temp.rnd(v.id, 802) < 0.85
ORDER BY v.id
"""

FLOW_KIND = weighted(
    {"'recent'": 25, "'idle'": 20, "'abandoned'": 55},
    "pg_temp.rnd(n, 811)",
)

FLOWS = f"""
INSERT INTO b2b_onboarding_sessions (user_id, status, step, data, created_at,
                                     last_activity_at, expires_at, abandoned_at)
SELECT :users_first + floor(pg_temp.rnd(n, 812) * :users_count)::bigint,
       CASE WHEN f.kind = 'abandoned' THEN 'ABANDONED' ELSE 'ACTIVE' END,
       f.step,
       jsonb_strip_nulls(jsonb_build_object(
           'business_name', {pick(VENUE_WORDS, "pg_temp.rnd(n, 813)")} || ' '
                            || {pick(PLACES, "pg_temp.rnd(n, 814)")},
           'area', CASE WHEN f.step_no >= 2
                        THEN {pick(PLACES, "pg_temp.rnd(n, 814)")} END,
           'phone', CASE WHEN f.step_no >= 2 THEN '+62812' || (5000000 + n) END)),
       f.started, f.active, f.started + interval '{SESSION_DAYS} days',
       CASE WHEN f.kind = 'abandoned'
            THEN f.active + interval '48 hours'
                 + pg_temp.rnd(n, 815) * interval '1 day' END
FROM generate_series(CAST(:lo AS bigint), :hi) AS n
CROSS JOIN LATERAL (
    SELECT kind, 1 + floor(pg_temp.rnd(n, 816) * {len(STEPS)})::int AS step_no,
           CASE kind
               WHEN 'recent' THEN :at - pg_temp.rnd(n, 817) * interval '40 hours'
               WHEN 'idle' THEN :at - interval '49 hours'
                                - pg_temp.rnd(n, 817) * interval '9 days'
               ELSE :at - interval '4 days' - pg_temp.rnd(n, 817) * interval '50 days'
           END AS active
    FROM (SELECT {FLOW_KIND} AS kind) AS k
) AS a
CROSS JOIN LATERAL (
    SELECT a.kind, a.active, a.step_no,
           ({sql_array(STEPS)})[a.step_no] AS step,
           a.active - pg_temp.rnd(n, 818) * interval '3 days' AS started
) AS f
ORDER BY n
"""

REFERRAL_KIND = weighted(
    {"'redeemed'": 33, "'plain'": 62, "'promotion'": 5},
    "pg_temp.rnd(n, 821)",
)

# A promotion's codes were made 30 days before it ended, a few hours ago.
REFERRALS = f"""
INSERT INTO referral_codes (code, referrer_user_id, status, created_at, expires_at,
                            redeemed_at, redeemed_by_user_id, expired_at)
SELECT 'BALI-' || n || '-' || upper(substr(md5('referral' || n), 1, 4)),
       r.referrer, c.status, r.created,
       r.created + interval '{REFERRAL_DAYS} days', c.redeemed_at,
       CASE WHEN c.status = 'REDEEMED'
            THEN :users_first
                 + (r.referrer - :users_first + 1
                    + floor(pg_temp.rnd(n, 822) * (:users_count - 1))::bigint)
                   % :users_count END,
       c.expired_at
FROM generate_series(CAST(:lo AS bigint), :hi) AS n
CROSS JOIN LATERAL (
    SELECT :users_first + floor(pg_temp.rnd(n, 823) * :users_count)::bigint
               AS referrer,
           {REFERRAL_KIND} AS kind,
           CASE WHEN {REFERRAL_KIND} = 'promotion'
                THEN :at - interval '{REFERRAL_DAYS} days'
                     - pg_temp.rnd(n, 824) * interval '6 hours'
                ELSE :at - pg_temp.rnd(n, 824) * interval '120 days' END AS created
) AS r
CROSS JOIN LATERAL (
    SELECT r.created + interval '{REFERRAL_DAYS} days' AS expires,
           -- the daily 06:00 WITA run that expired a code
           ((date_trunc('day', (r.created + interval '{REFERRAL_DAYS} days')
                               AT TIME ZONE :tz - interval '6 hours')
             + interval '30 hours') AT TIME ZONE :tz) AS expiry_run
) AS e
CROSS JOIN LATERAL (
    SELECT CASE WHEN r.kind = 'redeemed' THEN 'REDEEMED'
                WHEN e.expiry_run <= :at AND r.kind = 'plain' THEN 'EXPIRED'
                ELSE 'ACTIVE' END AS status,
           CASE WHEN r.kind = 'redeemed'
                THEN least(r.created + pg_temp.rnd(n, 825) * interval '20 days', :at)
           END AS redeemed_at,
           CASE WHEN r.kind = 'plain' AND e.expiry_run <= :at THEN e.expiry_run END
               AS expired_at
) AS c
ORDER BY n
"""


@seeder(
    "lifecycle",
    tables=("b2b_onboarding_sessions", "referral_codes"),
    after=("core",),
)
def fill(connection: Connection, plan: Plan) -> dict[str, int]:
    sessions = in_chunks(connection, plan, COMPLETED_SESSIONS, *plan.ranges["venues"])
    # Numbering continues from the users' range so a --force data set gets codes
    # of its own (the code is unique).
    users_first, _ = plan.ranges["users"]
    flows = FLOWS_PER_SCALE * plan.scale
    sessions += in_chunks(connection, plan, FLOWS, users_first, users_first + flows - 1)
    codes = REFERRALS_PER_SCALE * plan.scale
    referrals = in_chunks(
        connection, plan, REFERRALS, users_first, users_first + codes - 1
    )
    return {"b2b_onboarding_sessions": sessions, "referral_codes": referrals}
