-- File format: a "-- name --" line, comment lines saying what the query does, the
-- query. Placeholders are psycopg's %(name)s. The tick decisions themselves live in
-- SQL functions (migrations 0007, 0012) so that every worker takes them under one
-- lock.

-- upsert_schedules --
-- At worker start: insert or refresh every schedule the deployed code declares.
-- Sorted, so that workers starting together lock the rows in the same order.
INSERT INTO schedules AS s (id, task_name, cron, zone, queue, misfire_policy,
                            description, has_body, next_run_at)
SELECT *
FROM unnest(%(ids)s::text[], %(tasks)s::text[], %(crons)s::text[], %(zones)s::text[],
            %(queues)s::text[], %(policies)s::text[], %(descriptions)s::text[],
            %(has_body)s::boolean[], %(next_run_at)s::timestamptz[])
ORDER BY 1
ON CONFLICT (id) DO UPDATE
SET task_name = EXCLUDED.task_name, cron = EXCLUDED.cron, zone = EXCLUDED.zone,
    queue = EXCLUDED.queue, misfire_policy = EXCLUDED.misfire_policy,
    description = EXCLUDED.description, has_body = EXCLUDED.has_body,
    next_run_at = EXCLUDED.next_run_at, last_seen = now(), removed_at = NULL

-- mark_removed_schedules --
-- At worker start: schedules the deployed code no longer declares are marked,
-- never deleted.
UPDATE schedules
SET removed_at = now()
WHERE removed_at IS NULL AND NOT (id = ANY(%(ids)s::text[]))
RETURNING id

-- record_worker --
-- What this worker defers, for "schedules check" to compare with the code.
INSERT INTO schedule_workers (worker_id, hostname, pid, deployed)
VALUES (%(worker_id)s, %(hostname)s, %(pid)s, %(deployed)s)
ON CONFLICT (worker_id) DO UPDATE
SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, deployed = EXCLUDED.deployed,
    started_at = now()

-- last_ticks --
-- The last decided tick of each schedule (NULL: never decided).
SELECT id, agnt_schedule_last_tick(id) AS last_tick
FROM unnest(%(ids)s::text[]) AS id

-- defer_tick --
-- Decide one tick: defer it, or record it skipped (paused, previous run waiting).
SELECT outcome, job_id
FROM agnt_defer_schedule_tick(%(schedule_id)s, %(queue)s, %(lock)s, %(queueing_lock)s,
                              %(priority)s, %(tick)s, %(retry_when_queued)s,
                              %(worker_id)s)

-- skip_tick --
-- Decide one tick skipped for a reason found before deferring (not_configured).
SELECT agnt_skip_schedule_tick(%(schedule_id)s, %(tick)s, %(reason)s,
                               %(worker_id)s) AS outcome

-- record_missed --
-- Record a range of ticks no worker deferred in time (one row for the range).
SELECT agnt_record_missed_ticks(%(schedule_id)s, %(first)s, %(last)s,
                                %(worker_id)s) AS recorded

-- set_next_runs --
-- Keep schedules.next_run_at current, writing only the rows that changed.
UPDATE schedules s
SET next_run_at = v.next_run_at
FROM unnest(%(ids)s::text[], %(next_run_at)s::timestamptz[]) AS v(id, next_run_at)
WHERE s.id = v.id AND s.next_run_at IS DISTINCT FROM v.next_run_at

-- set_enabled --
-- Pause or resume. A schedule no worker has synced yet is added from the code.
INSERT INTO schedules (id, task_name, cron, zone, queue, misfire_policy, description,
                       has_body, enabled)
VALUES (%(id)s, %(task)s, %(cron)s, %(zone)s, %(queue)s, %(policy)s, %(description)s,
        %(has_body)s, %(enabled)s)
ON CONFLICT (id) DO UPDATE SET enabled = EXCLUDED.enabled

-- overview --
-- Every schedule the database knows, with its last tick and last run.
SELECT * FROM schedule_overview ORDER BY id

-- live_workers --
-- Workers with a recent heartbeat, and the registry each deployed.
SELECT w.worker_id, w.hostname, w.pid, w.started_at, w.deployed
FROM schedule_workers w
JOIN procrastinate_workers p ON p.id = w.worker_id
WHERE p.last_heartbeat > now() - make_interval(secs => %(stalled_seconds)s)
ORDER BY w.worker_id

-- job_state --
-- A job's status and its last attempt's outcome, for "run --wait".
SELECT j.status::text AS status, j.attempts, r.result, r.error
FROM procrastinate_jobs j
LEFT JOIN LATERAL (
    SELECT result, error FROM job_runs
    WHERE job_runs.job_id = j.id ORDER BY attempt DESC LIMIT 1
) r ON true
WHERE j.id = %(job_id)s

-- waiting_job --
-- The run of a job that is already waiting (its queueing lock is taken).
SELECT id FROM procrastinate_jobs
WHERE queueing_lock = %(queueing_lock)s AND status = 'todo'
