-- File format: a "-- name --" line, comment lines saying what the query does, the
-- query. Placeholders are psycopg's %(name)s. The tick decisions themselves live in
-- SQL functions (agnt_defer_schedule_tick, agnt_skip_schedule_tick; their definitions
-- at head are in docs/schema.sql) so that every worker takes them under one lock.

-- declare_schedules --
-- At worker start (a deploy): declare every schedule of the code, keep what
-- operators changed, mark declared schedules the code dropped; the ids marked.
SELECT id
FROM agnt_declare_schedules(%(ids)s::text[], %(crons)s::text[], %(zones)s::text[],
                            %(queues)s::text[], %(policies)s::text[],
                            %(timeouts)s::interval[], %(descriptions)s::text[],
                            %(has_body)s::boolean[], %(next_run_at)s::timestamptz[])
     AS id

-- record_worker --
-- What this worker defers, for "schedules check" to compare with the code.
INSERT INTO schedule_workers (worker_id, hostname, pid, deployed)
VALUES (%(worker_id)s, %(hostname)s, %(pid)s, %(deployed)s)
ON CONFLICT (worker_id) DO UPDATE
SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, deployed = EXCLUDED.deployed,
    started_at = now()

-- effective_schedules --
-- What the deferrer follows, read at each pass: every live schedule of a job this
-- worker has the body of, as it is now, with its last decided tick and when its
-- cron, zone or job last changed; and every live row no worker can follow
-- (``problem``), which the deferrer sets aside. Read through schedule_rows, so
-- that no value of one row can fail the read of all (docs/schema.sql).
SELECT s.id, s.task_name, s.cron, s.zone, s.queue, s.misfire_policy, s.timeout,
       s.cron_changed_at, s.problem, agnt_schedule_last_tick(s.id) AS last_tick
FROM schedule_rows s
WHERE s.removed_at IS NULL
  AND (s.task_name = ANY(%(tasks)s::text[]) OR s.problem IS NOT NULL)
ORDER BY s.id

-- set_aside --
-- Record why a worker cannot follow a schedule (it alone stops ticking); the
-- pages, /metrics, the health monitor and "schedules check" show it.
INSERT INTO schedule_faults (schedule_id, reason, worker_id)
VALUES (%(schedule_id)s, %(reason)s, %(worker_id)s)
ON CONFLICT (schedule_id) DO UPDATE
SET reason = EXCLUDED.reason, worker_id = EXCLUDED.worker_id, noticed_at = now()
WHERE schedule_faults.reason IS DISTINCT FROM EXCLUDED.reason

-- followed_again --
-- The schedules a worker follows have no fault recorded any more.
DELETE FROM schedule_faults WHERE schedule_id = ANY(%(ids)s::text[])

-- defer_tick --
-- Decide one tick planned with the given job, cron, zone and queue: 'deferred'
-- (job_id: the run's id) or 'skipped' with its reason, recorded; or, recorded
-- nowhere, 'changed' (an operator changed those meanwhile: plan again),
-- 'already_decided', or 'held' (the previous run waits: try again later).
SELECT outcome, reason, job_id
FROM agnt_defer_schedule_tick(%(schedule_id)s, %(task_name)s, %(cron)s, %(zone)s,
                              %(queue)s, %(lock)s, %(queueing_lock)s, %(priority)s,
                              %(tick)s, %(retry_when_queued)s, %(worker_id)s)

-- skip_tick --
-- Decide one tick skipped for a reason found before deferring (not_configured):
-- 'skipped', or 'already_decided'.
SELECT agnt_skip_schedule_tick(%(schedule_id)s, %(tick)s, %(reason)s,
                               %(worker_id)s) AS outcome

-- record_missed --
-- Record a range of ticks no worker deferred in time (one row for the range),
-- skipped as 'missed' ('paused' if the schedule is paused); not recorded (false)
-- when a tick of the range was decided after the pass read the last one.
SELECT agnt_record_missed_ticks(%(schedule_id)s, %(first)s, %(last)s,
                                %(worker_id)s) AS recorded

-- set_next_runs --
-- Keep schedules.next_run_at current, writing only the rows that changed, and
-- never a row that became one no worker can follow since it was read (the
-- schedules checks would refuse the whole statement).
UPDATE schedules s
SET next_run_at = v.next_run_at
FROM unnest(%(ids)s::text[], %(next_run_at)s::timestamptz[]) AS v(id, next_run_at)
WHERE s.id = v.id AND s.next_run_at IS DISTINCT FROM v.next_run_at
  AND agnt_schedule_problem(s) IS NULL

-- acting --
-- Who makes the changes of this transaction, for the schedules trigger's audit row
-- (empty: the database role and application_name; source empty: 'sql').
SELECT set_config('agnt.changed_by', %(changed_by)s, true),
       set_config('agnt.change_source', %(source)s, true)

-- schedule_row --
-- One schedule as the table has it (schedule_rows: a value no reader can use is
-- NULL, and ``problem`` says why).
SELECT * FROM schedule_rows WHERE id = %(id)s

-- declare_one --
-- A declared schedule no worker has declared in the table yet, as a deploy would
-- (with agnt.change_source = 'deploy').
INSERT INTO schedules (id, task_name, cron, zone, queue, misfire_policy, timeout,
                       description, has_body, next_run_at, declared, declared_cron,
                       declared_zone, declared_misfire_policy, declared_timeout)
VALUES (%(id)s, %(id)s, %(cron)s, %(zone)s, %(queue)s, %(policy)s, %(timeout)s,
        %(description)s, %(has_body)s, %(next_run_at)s, true, %(cron)s, %(zone)s,
        %(policy)s, %(timeout)s)
ON CONFLICT (id) DO NOTHING

-- set_schedule --
-- Change what is given (NULL leaves a value); the trigger checks and audits it.
UPDATE schedules
SET cron = COALESCE(%(cron)s, cron), zone = COALESCE(%(zone)s, zone),
    misfire_policy = COALESCE(%(misfire_policy)s, misfire_policy),
    timeout = COALESCE(%(timeout)s::interval, timeout),
    enabled = COALESCE(%(enabled)s, enabled)
WHERE id = %(id)s

-- reset_schedule --
-- Back to what the code declares (the pause switch stays).
UPDATE schedules
SET cron = declared_cron, zone = declared_zone,
    misfire_policy = declared_misfire_policy, timeout = declared_timeout
WHERE id = %(id)s AND declared

-- set_enabled --
-- Pause or resume.
UPDATE schedules SET enabled = %(enabled)s WHERE id = %(id)s

-- overridden --
-- Declared schedules whose values in effect differ from the declaration, with the
-- last change an operator made.
SELECT s.id, s.cron, s.zone, s.misfire_policy, s.timeout, c.changed_by, c.changed_at
FROM schedule_rows s
LEFT JOIN LATERAL (
    SELECT changed_by, changed_at FROM schedule_changes
    WHERE schedule_id = s.id AND source <> 'deploy'
    ORDER BY changed_at DESC LIMIT 1
) c ON true
WHERE s.overridden AND s.removed_at IS NULL
ORDER BY s.id

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

-- run_timeout --
-- How long a run may take: its tick's schedule's timeout, else its job's own
-- (the SQL function agnt_run_timeout).
SELECT agnt_run_timeout(%(job_id)s, %(job)s)

-- record_run_action --
-- An operator's request on a run that no SQL function records (a run at a time).
INSERT INTO job_run_actions (job_id, action, requested_by, source)
VALUES (%(job_id)s, %(action)s, %(by)s, %(source)s)

-- cancel_run --
-- Cancel a waiting run, or ask a running one to stop (docs/schema.sql).
SELECT agnt_cancel_run(%(job_id)s, %(by)s, %(source)s)

-- retry_run --
-- Run again a failed, timed-out or cancelled run; the new job id.
SELECT agnt_retry_run(%(job_id)s, %(by)s, %(source)s)

-- waits_until --
-- When a waiting run is set to start (NULL: as soon as a worker takes it).
SELECT scheduled_at FROM procrastinate_jobs
WHERE id = %(job_id)s AND status = 'todo' AND scheduled_at > now()

-- retry_runs --
-- Retry every such run of a job that ended in a time window.
SELECT job_id, new_job_id
FROM agnt_retry_runs(%(job)s, %(since)s, %(until)s, %(by)s, %(source)s)

-- host_workers --
-- The workers of one host (a pod, a machine), freshest heartbeat first, for
-- "agnt-jobs healthcheck" run beside them.
SELECT w.worker_id, w.pid,
       extract(epoch FROM now() - p.last_heartbeat)::float8 AS heartbeat_age
FROM schedule_workers w
JOIN procrastinate_workers p ON p.id = w.worker_id
WHERE w.hostname = %(hostname)s
ORDER BY p.last_heartbeat DESC

-- claim_pass --
-- Whether this worker makes the pass for a tick of the schedules it follows
-- ('claimed'), or another worker did or does ('done', 'running'); docs/schema.sql.
SELECT agnt_claim_schedule_pass(%(fingerprint)s, %(due_at)s, %(worker_id)s,
                                make_interval(secs => %(stale)s)) AS outcome

-- finish_pass --
-- The pass this worker claimed ended: no other worker takes it over.
UPDATE schedule_passes SET finished_at = clock_timestamp()
WHERE fingerprint = %(fingerprint)s AND due_at = %(due_at)s
  AND worker_id IS NOT DISTINCT FROM %(worker_id)s AND finished_at IS NULL
