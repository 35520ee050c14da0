-- The admin view's reads. It keeps no state: everything here is the audit views
-- (docs/schema.sql) and the run history, as any SQL client sees them. Spans are
-- differences of epochs, not of timestamps: a row may hold 'infinity', which
-- Postgres will not subtract, and whose epoch is Infinity.

-- registry --
-- Every schedule the database knows, with its last tick and last run
-- (schedule_overview), and the schedule_late_ticks kinds of its last decided tick
-- and of its next tick (an 'overdue' row: due, and no worker decided it). Both are
-- exact (schedule_id, tick_at) lookups, so the view's scan of every tick is never
-- done. "Late" is the view's own threshold, agnt.late_after (1 minute unless the
-- database or role sets it).
SELECT o.*,
       COALESCE((SELECT array_agg(DISTINCT l.kind ORDER BY l.kind)
                 FROM schedule_late_ticks l
                 WHERE l.schedule_id = o.id
                   AND l.tick_at IN (o.last_tick_at, o.next_run_at)),
                '{}') AS late_kinds
FROM schedule_overview o
ORDER BY o.id

-- duplicate_payments --
-- Stripe objects found made twice (payments, invoices, invoice items) and not made
-- right yet, by status: a customer was, or may be, charged twice (the registry
-- page says so above the schedules).
SELECT status, count(*) AS payments FROM duplicate_payments
WHERE status NOT IN ('REFUNDED', 'VOIDED', 'DELETED') GROUP BY status ORDER BY status

-- known_jobs --
-- Every job name the history or the registry has seen, for validating a filter.
SELECT EXISTS (SELECT 1 FROM schedules WHERE task_name = %(job)s)
    OR EXISTS (SELECT 1 FROM job_runs WHERE task_name = %(job)s) AS known

-- run_job --
-- One run (a Procrastinate job) as job_run_audit shows it, while the job is kept.
SELECT * FROM job_run_audit WHERE job_id = %(job_id)s

-- run_attempts --
-- Every attempt of one run, oldest first, with the tick it was deferred for.
SELECT r.job_id, r.attempt, r.task_name, r.queue_name, r.status, r.started_at,
       r.finished_at, r.worker_name, r.worker_id, r.result, r.error,
       t.tick_at AS scheduled_tick
FROM job_runs r
LEFT JOIN schedule_ticks t ON t.job_id = r.job_id
WHERE r.job_id = %(job_id)s
ORDER BY r.attempt

-- run_events --
-- Procrastinate's status changes of one job, in order.
SELECT id, type::text AS type, at
FROM procrastinate_events
WHERE job_id = %(job_id)s
ORDER BY at, id

-- timeline --
-- Runs started in [since, until), per job and per bucket of bucket_seconds,
-- counted by outcome, for the page's 24-hour timeline; "aborted" counts every run
-- that ended early, stopped at a checkpoint or aborted.
SELECT task_name,
       date_bin(make_interval(secs => %(bucket_seconds)s), started_at, %(since)s)
           AS bucket,
       count(*) AS runs,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status IN ('aborted', 'stopped')) AS aborted,
       count(*) FILTER (WHERE status = 'running') AS running
FROM job_runs
WHERE started_at >= %(since)s AND started_at < %(until)s
GROUP BY 1, 2
ORDER BY 1, 2

-- recent_failures --
-- The newest failed attempts, newest first.
SELECT job_id, attempt, task_name, started_at, finished_at, error
FROM job_runs
WHERE status = 'failed'
ORDER BY started_at DESC, job_id DESC, attempt DESC
LIMIT %(limit)s

-- session_start --
-- A sign-in: its cookie's nonce, hashed, lives until expires_at. Sessions that
-- have ended go at the same time (a table of live sign-ins only).
WITH expired AS (DELETE FROM admin_sessions WHERE expires_at <= now())
INSERT INTO admin_sessions (nonce_sha256, expires_at, client)
VALUES (%(nonce_sha256)s, now() + make_interval(secs => %(seconds)s), %(client)s)

-- session_live --
-- Whether the session of a cookie is signed in.
SELECT EXISTS (SELECT 1 FROM admin_sessions
               WHERE nonce_sha256 = %(nonce_sha256)s AND expires_at > now()) AS live

-- session_end --
-- Sign-out.
DELETE FROM admin_sessions WHERE nonce_sha256 = %(nonce_sha256)s

-- schedule_row --
-- One schedule as the table has it (effective and declared values), through
-- schedule_rows: a value no reader can use is NULL, and ``problem`` says why.
SELECT * FROM schedule_rows WHERE id = %(id)s

-- schedule_stats --
-- A job's runs that started within the last 24 hours and 7 days: how many ended,
-- how many succeeded, and the median and 95th percentile of their durations.
-- Both windows read the history's (task_name, started_at) index.
SELECT w.label,
       count(r.job_id) FILTER (WHERE r.status <> 'running') AS ended,
       count(r.job_id) FILTER (WHERE r.status = 'succeeded') AS succeeded,
       count(r.job_id) FILTER (WHERE r.status = 'running') AS running,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY (extract(epoch FROM r.finished_at) - extract(epoch FROM r.started_at))::float8)
           AS p50_seconds,
       percentile_cont(0.95) WITHIN GROUP (
           ORDER BY (extract(epoch FROM r.finished_at) - extract(epoch FROM r.started_at))::float8)
           AS p95_seconds
FROM (VALUES (1, '24 h', interval '24 hours'), (2, '7 d', interval '7 days'))
     AS w(position, label, span)
LEFT JOIN job_runs r
       ON r.task_name = %(job)s AND r.started_at >= now() - w.span
GROUP BY w.position, w.label
ORDER BY w.position

-- recent_durations --
-- The newest finished runs of a job, for its duration chart.
SELECT job_id, attempt, status, started_at,
       (extract(epoch FROM finished_at) - extract(epoch FROM started_at))::float8
           AS seconds
FROM job_runs
WHERE task_name = %(job)s AND finished_at IS NOT NULL
ORDER BY started_at DESC
LIMIT %(limit)s

-- workers --
-- Every worker Procrastinate knows, with its host and pid (schedule_workers), the
-- age of its heartbeat and the jobs it runs now.
SELECT w.id, w.last_heartbeat,
       (extract(epoch FROM now()) - extract(epoch FROM w.last_heartbeat))::float8
           AS heartbeat_age,
       s.hostname, s.pid, s.started_at, s.starved_since, s.starved_reason,
       COALESCE((SELECT jsonb_agg(jsonb_build_object('job_id', j.id,
                                                     'task', j.task_name)
                                  ORDER BY j.id)
                 FROM procrastinate_jobs j
                 WHERE j.worker_id = w.id AND j.status = 'doing'), '[]')
           AS running
FROM procrastinate_workers w
LEFT JOIN schedule_workers s ON s.worker_id = w.id
ORDER BY w.id

-- gone_workers --
-- Workers that started and are gone from Procrastinate's table: pruned after
-- going silent, or stopped (the retention removes them later), newest first.
SELECT s.worker_id AS id, s.hostname, s.pid, s.started_at
FROM schedule_workers s
WHERE NOT EXISTS (SELECT 1 FROM procrastinate_workers w WHERE w.id = s.worker_id)
ORDER BY s.started_at DESC
LIMIT 20

-- waiting_runs --
-- A job's runs waiting in the queue (due now, or at a time), oldest first.
SELECT j.id AS job_id, j.scheduled_at, j.queue_name,
       (SELECT min(e.at) FROM procrastinate_events e
        WHERE e.job_id = j.id AND e.type = 'deferred') AS deferred_at
FROM procrastinate_jobs j
WHERE j.task_name = %(job)s AND j.status = 'todo'
ORDER BY j.id
LIMIT 50
