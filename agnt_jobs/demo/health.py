"""Demo data for the health monitor and the alerts outbox: a month of the monitor's
15-minute results, each check's current state, and the alerts it and the weekly
dead-letter report sent.

The results cover 31 days (a day more than ``health_results_retention_days``, so
the next run prunes), quiet except for two incidents that come back as alerts: a
channel gateway outage three days ago (``send_queue_backlog``) and jobs failing
for 45 minutes nine days ago (``failed_jobs``). Past weekly dead-letter reports
were sent; last week's is queued but unsent (the alerts webhook answered 502), so
the next ``dlq_weekly_report`` or monitor run with ``AGNT_ALERTS_WEBHOOK_URL`` set
delivers it. The size of this data does not grow with the scale: it is one
monitor's month.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from agnt_jobs.demo.seeders import Plan, in_chunks, next_id, seeder

DAYS = 31
PER_DAY = 96  # every 15 minutes

# (name, limit, normal value from the draw t.r): the default thresholds.
CHECKS = (
    ("database_latency", 250, "round((0.6 + 2.5 * t.r)::numeric, 3)"),
    ("queue_depth", 500, "floor(power(t.r, 2) * 30)"),
    ("oldest_waiting_job", 900, "round((t.r * 45)::numeric, 3)"),
    ("failed_jobs", 0, "0"),
    ("missed_schedules", 0, "0"),
    ("send_queue_backlog", 200, "floor(t.r * 40)"),
    ("webhook_backlog", 200, "floor(t.r * 15)"),
    ("dead_letter_growth", 10, "floor(power(t.r, 3) * 5)"),
)
# (check, hours before the anchor it began, minutes it lasted, value meanwhile)
INCIDENTS = (
    ("send_queue_backlog", 72, 60, "250 + floor(t.r * 700)"),
    ("failed_jobs", 9 * 24 + 5, 45, "1 + floor(t.r * 2)"),
)

CHECK_ROWS = ", ".join(
    f"({i}, '{name}', {limit})" for i, (name, limit, _) in enumerate(CHECKS)
)
NORMAL = " ".join(f"WHEN '{name}' THEN {value}" for name, _, value in CHECKS)
INCIDENT = " ".join(
    f"WHEN c.name = '{name}' AND t.tick >= :at - interval '{hours} hours' "
    f"AND t.tick < :at - interval '{hours} hours' + interval '{minutes} minutes' "
    f"THEN {value}"
    for name, hours, minutes, value in INCIDENTS
)

# The last quarter hour before the anchor (a minute of slack for the run).
LAST_TICK = (
    "date_bin(interval '15 minutes', CAST(:at AS timestamptz) - interval '1 minute', "
    "timestamptz '2000-01-01 00:00:00+00')"
)

RESULTS = f"""
INSERT INTO health_check_results (check_name, status, value, details, checked_at)
SELECT c.name, CASE WHEN v.value > c.limit_value THEN 'failing' ELSE 'ok' END,
       v.value, jsonb_build_object('limit', c.limit_value),
       t.tick + interval '2 seconds' + c.i * interval '40 milliseconds'
FROM generate_series(CAST(:lo AS bigint), :hi) AS k
CROSS JOIN (VALUES {CHECK_ROWS}) AS c (i, name, limit_value)
CROSS JOIN LATERAL (
    SELECT {LAST_TICK} - k * interval '15 minutes' AS tick,
           pg_temp.rnd(k * 8 + c.i, 981) AS r
) AS t
CROSS JOIN LATERAL (
    SELECT coalesce(CASE {INCIDENT} END, CASE c.name {NORMAL} END)::float8 AS value
) AS v
ORDER BY k DESC, c.i
"""

# Each check's latest result, and since when its status has been what it is.
STATES = """
INSERT INTO health_check_state (check_name, status, since, checked_at, value,
                                details)
SELECT last.check_name, last.status,
       coalesce((SELECT min(r.checked_at) FROM health_check_results AS r
                 WHERE r.check_name = last.check_name AND r.checked_at > (
                     SELECT max(x.checked_at) FROM health_check_results AS x
                     WHERE x.check_name = last.check_name
                       AND x.status <> last.status)),
                (SELECT min(r.checked_at) FROM health_check_results AS r
                 WHERE r.check_name = last.check_name)),
       last.checked_at, last.value, last.details
FROM (
    SELECT DISTINCT ON (check_name) check_name, status, checked_at, value, details
    FROM health_check_results
    WHERE id BETWEEN :lo AND :hi
    ORDER BY check_name, checked_at DESC
) AS last
ORDER BY last.check_name
"""

# An alert at every change of state, sent a second later.
HEALTH_ALERTS = """
INSERT INTO alerts (idempotency_key, kind, summary, data, created_at, attempts,
                    sent_at)
SELECT 'health:' || check_name || ':' || id, 'health',
       CASE WHEN status = 'failing' THEN '[FAILING] ' ELSE '[RECOVERED] ' END
           || check_name || ': ' || value || ' (limit ' || (details->>'limit') || ')',
       jsonb_build_object('check', check_name, 'from', previous, 'to', status,
                          'value', value, 'details', details,
                          'checked_at', checked_at),
       checked_at, 1, checked_at + interval '1 second'
FROM (
    SELECT *, lag(status) OVER (PARTITION BY check_name ORDER BY checked_at)
              AS previous
    FROM health_check_results WHERE id BETWEEN :lo AND :hi
) AS changes
WHERE previous IS NOT NULL AND previous <> status
ORDER BY checked_at, check_name
"""

# Monday 06:00 WITA reports of the weeks before, from the dead letters as they are
# now; the last one still waiting for the alerts webhook.
DLQ_REPORTS = """
INSERT INTO alerts (idempotency_key, kind, summary, data, created_at, attempts,
                    last_error, sent_at)
SELECT 'dlq_weekly:' || w.label, 'dlq_weekly',
       format('Dead letters %s: %s new (%s), %s of them unresolved; %s unresolved '
              'in all.', w.label, f.total,
              CASE WHEN p.total IS NULL THEN 'no previous report'
                   ELSE CASE WHEN f.total >= p.total THEN '+' ELSE '' END
                        || (f.total - p.total) || ' vs week before' END,
              f.unresolved, f.unresolved_all),
       jsonb_build_object('week', w.label, 'total', f.total,
                          'unresolved', f.unresolved,
                          'unresolved_all', f.unresolved_all,
                          'by_source', f.breakdown, 'previous_total', p.total,
                          'change', f.total - p.total),
       w.report_at, CASE WHEN w.n = 1 THEN 3 ELSE 1 END,
       CASE WHEN w.n = 1 THEN 'POST alerts webhook: HTTP 502' END,
       CASE WHEN w.n > 1 THEN w.report_at + interval '1 second' END
FROM generate_series(1, 4) AS g (k)
CROSS JOIN LATERAL (
    SELECT g.k AS n, to_char(monday - 7 * g.k, 'IYYY-"W"IW') AS label,
           (monday - 7 * g.k)::timestamp AT TIME ZONE :tz AS start_at,
           (monday - 7 * (g.k - 1))::timestamp AT TIME ZONE :tz AS end_at,
           (monday - 7 * (g.k - 1) + time '06:00') AT TIME ZONE :tz
               AS report_at
    FROM (SELECT date_trunc('week', CAST(:at AS timestamptz) AT TIME ZONE :tz)::date
                 AS monday) AS m
) AS w
CROSS JOIN LATERAL (
    SELECT count(*) AS total, count(*) FILTER (WHERE resolved_at IS NULL)
               AS unresolved,
           (SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL
              AND created_at < w.end_at) AS unresolved_all,
           coalesce((SELECT jsonb_agg(b ORDER BY b.total DESC, b.source,
                                      b.error_class)
                     FROM (SELECT source, error_class, count(*) AS total,
                                  count(*) FILTER (WHERE resolved_at IS NULL)
                                      AS unresolved
                           FROM dead_letters
                           WHERE created_at >= w.start_at AND created_at < w.end_at
                           GROUP BY source, error_class) AS b), '[]'::jsonb)
               AS breakdown
    FROM dead_letters
    WHERE created_at >= w.start_at AND created_at < w.end_at
) AS f
CROSS JOIN LATERAL (
    SELECT count(*) AS total FROM dead_letters
    WHERE created_at >= w.start_at - interval '7 days' AND created_at < w.start_at
) AS p
WHERE w.report_at <= :at
  -- a data set added beside another (--force) reports nothing twice
  AND NOT EXISTS (SELECT 1 FROM alerts WHERE idempotency_key = 'dlq_weekly:' || w.label)
ORDER BY w.n DESC
"""


@seeder(
    "health",
    tables=("health_check_results", "health_check_state", "alerts"),
    after=("messaging", "billing", "webhooks"),
)
def fill(connection: Connection, plan: Plan) -> dict[str, int]:
    if next_id(connection, "health_check_results") > 1:
        # One monitor, one history: a second data set (--force) adds none.
        return dict.fromkeys(
            ("health_check_results", "health_check_state", "alerts"), 0
        )
    results = in_chunks(connection, plan, RESULTS, 0, DAYS * PER_DAY - 1)
    last = next_id(connection, "health_check_results") - 1
    states = in_chunks(connection, plan, STATES, 1, last, chunk=last)
    alerts = in_chunks(connection, plan, HEALTH_ALERTS, 1, last, chunk=last)
    alerts += in_chunks(connection, plan, DLQ_REPORTS, 0, 0)
    return {
        "health_check_results": results,
        "health_check_state": states,
        "alerts": alerts,
    }
