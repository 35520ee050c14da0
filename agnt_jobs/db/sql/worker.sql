-- File format: see scheduling.sql. How a worker ends the jobs it runs.
--
-- A worker records a job's end only while the job is still its own: 'doing' under
-- its worker id, locked for the statement. A job the rescue took from it (the
-- worker's heartbeat was judged lost) has been decided by the rescue and may run
-- on another worker now; a late end from the first worker would overwrite that
-- claim, so it records nothing (the statement returns no row).

-- finish_own_job --
-- Procrastinate's finish transition (events, attempts), for a job still ours. A
-- job that held a lock releases it: a job waiting on that lock wakes the listening
-- workers as an inserted job does, so it starts now, not at their next poll.
WITH own AS (
    SELECT id, lock FROM procrastinate_jobs
    WHERE id = %(job_id)s AND status = 'doing' AND worker_id = %(worker_id)s
    FOR UPDATE
), finished AS (
    SELECT lock, procrastinate_finish_job_v1(
        id, %(status)s::procrastinate_job_status, %(delete_job)s
    ) IS NULL AS ended
    FROM own
), waiting AS (
    SELECT job.queue_name,
           json_build_object('type', 'job_inserted', 'job_id', job.id)::text AS payload
    FROM finished
    JOIN procrastinate_jobs job ON job.lock = finished.lock AND job.status = 'todo'
    WHERE finished.lock IS NOT NULL
      AND (job.scheduled_at IS NULL OR job.scheduled_at <= now())
    LIMIT 1
)
SELECT ended,
       (SELECT pg_notify('procrastinate_queue_v1#' || queue_name, payload)
        FROM waiting) AS queue_woken,
       (SELECT pg_notify('procrastinate_any_queue_v1', payload)
        FROM waiting) AS any_woken
FROM finished

-- retry_own_job --
-- Procrastinate's retry transition, for a job still ours; a retry due now wakes
-- the listening workers as an inserted job does (Procrastinate notifies only for
-- inserts), so a job a stopping worker puts back is taken by another at once, not
-- at its next poll.
WITH own AS (
    SELECT id, queue_name FROM procrastinate_jobs
    WHERE id = %(job_id)s AND status = 'doing' AND worker_id = %(worker_id)s
    FOR UPDATE
), retried AS (
    SELECT id, coalesce(%(queue)s, queue_name) AS queue_name,
           json_build_object('type', 'job_inserted', 'job_id', id)::text AS payload,
           %(retry_at)s::timestamptz <= now() AS due,
           procrastinate_retry_job_v2(
               id, %(retry_at)s, %(priority)s, %(queue)s, %(lock)s
           ) IS NULL AS ended
    FROM own
)
SELECT ended,
       CASE WHEN due THEN pg_notify('procrastinate_queue_v1#' || queue_name, payload) END,
       CASE WHEN due THEN pg_notify('procrastinate_any_queue_v1', payload) END
FROM retried
