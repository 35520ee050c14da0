"""Benchmark data for housekeeping, the queue's own tables, API keys and fees,
webhooks and price watchers. As in ``fixture_core``, the first ``:due`` rows of
each table (``:http_due`` for the jobs that call a peer per row) are what a job
must change, the rest is background it must leave alone."""

from __future__ import annotations

MEMORIES = """
INSERT INTO memories (user_id, kind, content, pinned, created_at, last_accessed_at)
SELECT 1 + g % :users, (ARRAY['fact', 'preference', 'plan'])[1 + g % 3],
       -- each of a user's memories names its own table: the background holds no
       -- duplicates for deep_dreaming to merge, at any scale (its due ones are
       -- in fixture_knowledge)
       'Likes table ' || (100 + g / :users) || ' by the window',
       -- old but pinned: kept forever
       g > :due AND g % 50 = 0,
       CASE WHEN g <= :due OR g % 50 = 0
            THEN CAST(:at AS timestamptz) - interval '200 days'
            ELSE CAST(:at AS timestamptz) - (g % 30) * interval '1 day' END,
       CASE WHEN g > :due AND g % 2 = 0
            THEN CAST(:at AS timestamptz) - interval '1 day' END
FROM generate_series(1, 5000 * :scale + :due) g
"""

DEAD_LETTERS = """
INSERT INTO dead_letters (source, source_id, error_class, error, attempts, created_at,
                          resolved_at, resolution)
SELECT (ARRAY['send_queue', 'webhook', 'fee_collection'])[1 + g % 3], 'bench-' || g,
       CASE WHEN g % 4 = 0 THEN 'permanent' ELSE 'exhausted' END, 'gateway said no', 5,
       CAST(:at AS timestamptz) - (g % 21) * interval '1 day' - interval '1 hour',
       CASE WHEN g <= :due THEN CAST(:at AS timestamptz) - interval '30 days'
            WHEN g % 3 = 0 THEN CAST(:at AS timestamptz) - interval '2 days' END,
       CASE WHEN g <= :due OR g % 3 = 0 THEN 'retried by hand' END
FROM generate_series(1, 500 * :scale + :due) g
"""

ERROR_LOG = """
INSERT INTO error_log (created_at, source, level, message, context)
SELECT CASE WHEN g <= :due THEN CAST(:at AS timestamptz) - interval '60 days'
            ELSE CAST(:at AS timestamptz) - (g % 20) * interval '1 day' END,
       'bench', 'ERROR', 'upstream timed out after 10 s', '{"attempt": 1}'
FROM generate_series(1, 5000 * :scale + :due) g
"""

# Ids in order: the archive's history (moved below), then :due entries twenty
# weeks old (past the archive's retention), then the current week's entries, then
# the cursor of the wiki, then :due entries of the previous week (to be archived
# by rotate_delta_log and applied by wiki_reconcile).
DELTA_LOG = """
INSERT INTO fleet_delta_log (id, created_at, agent_id, page_slug, action, title,
                             content)
SELECT g,
       CASE WHEN g <= 1000 * :scale
                THEN CAST(:week_start AS timestamptz) - interval '5 weeks'
                     + (g % 1000) * interval '1 minute'
            WHEN g <= 1000 * :scale + :due THEN CAST(:archive_expired_at AS timestamptz)
            WHEN g <= 1100 * :scale + :due
                THEN CAST(:week_start AS timestamptz) + (g % 600) * interval '1 second'
            ELSE CAST(:previous_week_start AS timestamptz) + interval '2 days'
                 + (g % 1000) * interval '1 minute' END,
       'agent-' || (g % 9), 'page-' || (g % 500),
       (ARRAY['create', 'update', 'update', 'retire'])[1 + g % 4], 'Page ' || (g % 500),
       'Opening hours and menu, revision ' || g
FROM generate_series(1, 1100 * :scale + 2 * :due) g
"""

ARCHIVE = """
WITH moved AS (
    DELETE FROM fleet_delta_log WHERE id <= 1000 * :scale + :due RETURNING *
)
INSERT INTO fleet_delta_log_archive (id, created_at, agent_id, page_slug, action, title,
                                     content, meta)
SELECT id, created_at, agent_id, page_slug, action, title, content, meta FROM moved
"""

WIKI_CURSOR = """
INSERT INTO fleet_wiki_cursor (id, last_delta_id) VALUES (1, 1100 * :scale + :due)
ON CONFLICT (id) DO UPDATE SET last_delta_id = EXCLUDED.last_delta_id
"""

# Finished jobs: :due of them finished ten days ago (past the job retention), the
# rest yesterday. Their events are written by hand: Procrastinate's triggers only
# record events for jobs inserted as 'todo'.
FINISHED_JOBS = """
INSERT INTO procrastinate_jobs (id, queue_name, task_name, args, status, attempts)
SELECT g, 'default', 'bench_history_' || (g % 40), '{}', 'succeeded', 1
FROM generate_series(1, 1000 * :scale + :due) g
"""

JOB_EVENTS = """
INSERT INTO procrastinate_events (job_id, type, at)
SELECT g, e.type::procrastinate_job_event_type,
       CASE WHEN g <= :due THEN CAST(:at AS timestamptz) - interval '10 days'
            ELSE CAST(:at AS timestamptz) - interval '1 day' END + e.offset_
FROM generate_series(1, 1000 * :scale + :due) g,
     (VALUES ('deferred', interval '0'), ('started', interval '1 second'),
             ('succeeded', interval '2 seconds')) AS e(type, offset_)
"""

JOB_RUNS = """
INSERT INTO job_runs (job_id, attempt, task_name, queue_name, worker_name, started_at,
                      finished_at, status, result)
SELECT g, 1, 'bench_history_' || (g % 40), 'default', 'worker',
       CASE WHEN g <= :due THEN CAST(:at AS timestamptz) - interval '40 days'
            ELSE CAST(:at AS timestamptz) - interval '2 days' END,
       CASE WHEN g <= :due THEN CAST(:at AS timestamptz) - interval '40 days'
            ELSE CAST(:at AS timestamptz) - interval '2 days' END + interval '1 second',
       'succeeded', '{"done": 1}'
FROM generate_series(1, 1000 * :scale + :due) g
"""

# A worker that died an hour ago, with :http_due jobs still 'doing'.
STALLED_JOBS = """
WITH dead AS (
    INSERT INTO procrastinate_workers (last_heartbeat)
    VALUES (CAST(:at AS timestamptz) - interval '1 hour') RETURNING id
), stalled AS (
    INSERT INTO procrastinate_jobs (id, queue_name, task_name, args, status, attempts,
                                    worker_id)
    SELECT 1000 * :scale + :due + g, 'default', 'bench_stalled_' || g, '{}', 'doing', 0,
           (SELECT id FROM dead)
    FROM generate_series(1, :http_due) g
    RETURNING id, task_name
)
INSERT INTO job_runs (job_id, attempt, task_name, queue_name, worker_name, started_at)
SELECT id, 1, task_name, 'default', 'dead-worker',
       CAST(:at AS timestamptz) - interval '1 hour'
FROM stalled
"""

USAGE_BATCH = """
INSERT INTO usage_batches (id, stripe_customer_id, cutoff, idempotency_key, event_count,
                           quantity, unit_price, amount, status, billed_at)
VALUES (1, 'cus_bench_usage', CAST(:at AS timestamptz) - interval '1 day',
        'usage:bench', 2000 * :scale, 2000 * :scale, 5000, 10000000 * :scale, 'BILLED',
        CAST(:at AS timestamptz) - interval '1 day')
"""

# :due keys last reset yesterday (reset_api_key_queries_today), the rest today.
API_KEYS = """
INSERT INTO api_keys (key_hash, key_prefix, name, user_id, stripe_customer_id,
                      queries_today, last_reset_on, created_at)
SELECT md5('bench-key-' || g), 'agnt_' || g, 'key ' || g, 1 + g % :users,
       'cus_bench_k' || (g % 200), 1 + g % 100,
       CASE WHEN g <= :due THEN CAST(:today AS date) - 1 ELSE CAST(:today AS date) END,
       CAST(:at AS timestamptz) - interval '90 days'
FROM generate_series(1, 100 * :scale + :due) g
"""

# Usage already billed: nothing is due for charge_unbilled_usage (that would need
# Stripe customers), but it has a table to look through.
USAGE_EVENTS = """
INSERT INTO api_key_usage_events (api_key_id, occurred_at, quantity, usage_batch_id,
                                  billed_at)
SELECT 1 + g % (100 * :scale + :due),
       CAST(:at AS timestamptz) - interval '2 days' + (g % 1000) * interval '1 minute',
       1, 1, CAST(:at AS timestamptz) - interval '1 day'
FROM generate_series(1, 2000 * :scale) g
"""

# Fees paid a month ago, and :due fees recorded FAILED yesterday although an hour
# ago the ledger received their payment: reconcile_fee_status marks them PAID.
# Their next retry is tomorrow, so retry_pending_fees has nothing due (that would
# need Stripe customers).
FEES = """
INSERT INTO fee_collections (venue_id, booking_id, stripe_customer_id, amount,
                             description, status, attempts, next_retry_at,
                             created_at, updated_at, paid_at)
SELECT 1 + g % :venues, NULL, 'cus_bench_' || (1 + g % :venues), 25000 + g % 10 * 1000,
       'Booking fee', CASE WHEN g <= :due THEN 'FAILED' ELSE 'PAID' END,
       CASE WHEN g <= :due THEN 2 ELSE 1 END,
       CASE WHEN g <= :due THEN CAST(:at AS timestamptz) + interval '1 day'
            ELSE CAST(:at AS timestamptz) - interval '30 days' END,
       CAST(:at AS timestamptz) - interval '31 days',
       CASE WHEN g <= :due THEN CAST(:at AS timestamptz) - interval '1 day'
            ELSE CAST(:at AS timestamptz) - interval '30 days' END,
       CASE WHEN g > :due THEN CAST(:at AS timestamptz) - interval '30 days' END
FROM generate_series(1, 1000 * :scale + :due) g
"""

LEDGER = """
INSERT INTO ledger_entries (created_at, entry_type, amount, idempotency_key, venue_id,
                            stripe_customer_id, fee_id, description)
SELECT CASE WHEN f.status = 'FAILED' THEN CAST(:at AS timestamptz) - interval '1 hour'
            ELSE f.updated_at END,
       'payment', f.amount, 'fee-payment:' || f.id, f.venue_id, f.stripe_customer_id,
       f.id, 'Booking fee paid'
FROM fee_collections f
"""

WEBHOOK_ENDPOINTS = """
INSERT INTO webhook_endpoints (venue_id, url, secret, created_at)
SELECT 1 + g % :venues, :peer || '/hooks/' || g, 'whsec_bench_' || g,
       CAST(:at AS timestamptz) - interval '100 days'
FROM generate_series(1, 10 * :scale) g
"""

WEBHOOK_DELIVERIES = """
INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload, status,
                                attempts, next_attempt_at, created_at, delivered_at,
                                last_status_code)
SELECT 1 + g % (10 * :scale), 'evt_' || g, 'booking.confirmed',
       jsonb_build_object('booking_id', g, 'status', 'CONFIRMED'),
       CASE WHEN g <= :http_due THEN 'FAILED' ELSE 'DELIVERED' END,
       1,
       CAST(:at AS timestamptz) - interval '1 minute',
       CAST(:at AS timestamptz) - interval '1 hour',
       CASE WHEN g > :http_due THEN CAST(:at AS timestamptz) - interval '1 hour' END,
       CASE WHEN g <= :http_due THEN 503 ELSE 200 END
FROM generate_series(1, 1000 * :scale + :http_due) g
"""

# :http_due active watchers over the three marketplaces; the target is met by about
# a tenth of the prices (agnt_jobs.standins.marketplaces.derived_price), which sends
# that many messages.
PRICE_WATCHERS = """
INSERT INTO price_watchers (user_id, marketplace, product_ref, title, target_price,
                            status, created_at)
SELECT 1 + g % :users, (ARRAY['shopee', 'tokopedia', 'lazada'])[1 + g % 3],
       CASE g % 3 WHEN 0 THEN '100.' || g WHEN 1 THEN 'bench-shop/' || g
                  ELSE g::text END,
       'Rice cooker ' || g, 60000,
       CASE WHEN g <= :http_due THEN 'ACTIVE' ELSE 'PAUSED' END,
       CAST(:at AS timestamptz) - interval '10 days'
FROM generate_series(1, 100 * :scale + :http_due) g
"""

STATEMENTS: list[tuple[str, str]] = [
    ("memories", MEMORIES),
    ("dead_letters", DEAD_LETTERS),
    ("error_log", ERROR_LOG),
    ("fleet_delta_log", DELTA_LOG),
    ("fleet_delta_log", ARCHIVE),
    ("fleet_delta_log", WIKI_CURSOR),
    ("procrastinate_jobs", FINISHED_JOBS),
    ("procrastinate_jobs", JOB_EVENTS),
    ("procrastinate_jobs", JOB_RUNS),
    ("procrastinate_jobs", STALLED_JOBS),
    ("api_keys", USAGE_BATCH),
    ("api_keys", API_KEYS),
    ("api_keys", USAGE_EVENTS),
    ("fees", FEES),
    ("fees", LEDGER),
    ("webhooks", WEBHOOK_ENDPOINTS),
    ("webhooks", WEBHOOK_DELIVERIES),
    ("price_watchers", PRICE_WATCHERS),
]
