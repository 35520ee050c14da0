-- File format: see scheduling.sql. Every statement here touches at most one chunk
-- of rows (%(limit)s), so each transaction stays short.

-- stalled_jobs --
-- Running jobs whose worker stopped heartbeating (killed, crashed, partitioned),
-- or whose worker row is gone (pruned by a starting worker). Locked, so two
-- rescuers never handle one job.
SELECT j.id, j.task_name, j.attempts, j.worker_id
FROM procrastinate_jobs j
LEFT JOIN procrastinate_workers w ON w.id = j.worker_id
WHERE j.status = 'doing'
  AND (w.id IS NULL OR w.last_heartbeat < now() - make_interval(secs => %(stalled_seconds)s))
ORDER BY j.id
LIMIT %(limit)s
FOR UPDATE OF j SKIP LOCKED

-- close_lost_run --
-- The run history of the lost attempt: it did not finish, its worker died.
UPDATE job_runs
SET status = 'failed', finished_at = now(), error = %(error)s
WHERE job_id = %(job_id)s AND attempt = %(attempt)s AND status = 'running'

-- retry_job --
-- Back to the queue now (Procrastinate's own transition: events, lock, attempts),
-- or ended failed when a newer job of its queueing lock already waits and will do
-- its work (agnt_retry_lost_job, docs/schema.sql). True if retried.
SELECT agnt_retry_lost_job(%(job_id)s)

-- fail_job --
-- Give up on the job: it failed.
SELECT procrastinate_finish_job_v1(%(job_id)s, 'failed', false)

-- delete_finished_jobs --
-- Jobs finished before the cutoff; their events go with them (ON DELETE CASCADE)
-- and Procrastinate unlinks their periodic defers. Walks the jobs by id, a chunk at
-- a time from %(after)s, and judges only that chunk: the planner probes each job's
-- events by index, where judging "the next doomed jobs" made it hash every recent
-- event and re-read the kept jobs for every chunk. Returns (scanned, deleted,
-- last_id).
WITH chunk AS (
    SELECT id FROM procrastinate_jobs WHERE id > %(after)s ORDER BY id LIMIT %(limit)s
), doomed AS (
    SELECT j.id
    FROM procrastinate_jobs j
    WHERE j.id = ANY(ARRAY(SELECT id FROM chunk))
      AND j.status IN ('succeeded', 'failed', 'cancelled', 'aborted')
      AND NOT EXISTS (
          SELECT 1 FROM procrastinate_events e
          WHERE e.job_id = j.id AND e.at >= %(cutoff)s
      )
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM procrastinate_jobs j WHERE j.id = ANY(ARRAY(SELECT id FROM doomed))
    RETURNING 1
)
SELECT (SELECT count(*) FROM chunk) AS scanned, (SELECT count(*) FROM gone) AS deleted,
       (SELECT max(id) FROM chunk) AS last_id

-- delete_old_runs --
-- Run history of attempts started before the cutoff (not one still running).
WITH gone AS (
    DELETE FROM job_runs
    WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM job_runs
        WHERE started_at < %(cutoff)s AND status <> 'running'
        ORDER BY started_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING 1
)
SELECT count(*) AS scanned, count(*) AS deleted, NULL::bigint AS last_id FROM gone

-- delete_old_ticks --
-- Tick decisions before the cutoff, except each schedule's newest: it is where the
-- next pass resumes (a monthly schedule's last tick may be older than the cutoff).
WITH gone AS (
    DELETE FROM schedule_ticks
    WHERE ctid = ANY(ARRAY(
        SELECT t.ctid FROM schedule_ticks t
        WHERE t.tick_at < %(cutoff)s
          AND t.tick_at < (SELECT max(n.tick_at) FROM schedule_ticks n
                           WHERE n.schedule_id = t.schedule_id)
        ORDER BY t.tick_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING 1
)
SELECT count(*) AS scanned, count(*) AS deleted, NULL::bigint AS last_id FROM gone

-- delete_gone_workers --
-- Registries of workers Procrastinate no longer knows (stopped or pruned).
DELETE FROM schedule_workers w
WHERE NOT EXISTS (SELECT 1 FROM procrastinate_workers p WHERE p.id = w.worker_id)
