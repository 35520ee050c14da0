-- The admin view's reads. It keeps no state: everything here is the audit views
-- (migration 0007) and the run history, as any SQL client sees them.

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
