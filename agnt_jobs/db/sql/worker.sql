-- File format: see scheduling.sql. How a worker ends the jobs it runs.
--
-- A worker records a job's end only while the job is still its own: 'doing' under
-- its worker id, locked for the statement. A job the rescue took from it (the
-- worker's heartbeat was judged lost) has been decided by the rescue and may run
-- on another worker now; a late end from the first worker would overwrite that
-- claim, so it records nothing (the statement returns no row).

-- finish_own_job --
-- Procrastinate's finish transition (events, attempts), for a job still ours.
WITH own AS (
    SELECT id FROM procrastinate_jobs
    WHERE id = %(job_id)s AND status = 'doing' AND worker_id = %(worker_id)s
    FOR UPDATE
)
SELECT procrastinate_finish_job_v1(
    id, %(status)s::procrastinate_job_status, %(delete_job)s
) IS NULL AS ended
FROM own

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
