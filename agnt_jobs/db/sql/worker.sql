-- File format: see scheduling.sql. How a worker ends the jobs it runs.
--
-- A worker records a job's end only while the job is still its own: 'doing' under
-- its worker id, locked for the statement. A job the rescue took from it (the
-- worker's heartbeat was judged lost) has been decided by the rescue and may run
-- on another worker now; a late end from the first worker would overwrite that
-- claim, so it records nothing (the statement returns no row).

-- finish_own_jobs --
-- Procrastinate's finish transition (events, attempts) for each of a batch of jobs
-- still ours, and each run's end in job_runs, in one statement: the SQL function
-- agnt_finish_own_jobs (docs/schema.sql), whose plan each server session keeps
-- (through PgBouncer nothing the worker sends is prepared). %(ends)s is a JSON
-- array of {job_id, status, delete_job, attempt, run_status, result, error}; a run
-- end without run_status has no run to close (no run history around the job).
-- A run's end is recorded while the run is still open, whoever holds its job now
-- (the rescue closes the runs it takes). Returns the jobs ended. A job that held
-- a lock releases it: a job waiting on that lock wakes the listening workers as an
-- inserted job does, so it starts now, not at their next poll.
SELECT id, ended, woken
FROM agnt_finish_own_jobs(%(ends)s::jsonb, %(worker_id)s)

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

-- give_up_claims --
-- No claim of this worker numbered up to %(claim)s takes a job from now on. A
-- claim reads the number under the worker's row held FOR KEY SHARE until it
-- commits (agnt_fenced_claim, docs/schema.sql), which this FOR UPDATE conflicts
-- with: while a claim is under way on the server this gives up nothing and
-- returns no row (SKIP LOCKED: the worker's heartbeats never queue behind a
-- give-up), and the worker tries again later. Once it returns the worker's id,
-- the give-back that follows, in a statement of its own, sees all that the
-- given-up claims took.
WITH held AS (
    SELECT id FROM procrastinate_workers WHERE id = %(worker_id)s
    FOR UPDATE SKIP LOCKED
)
UPDATE procrastinate_workers AS worker
SET agnt_claims_given_up_through =
        greatest(worker.agnt_claims_given_up_through, %(claim)s)
FROM held
WHERE worker.id = held.id
RETURNING worker.id

-- give_back_lost_claims --
-- Jobs 'doing' under this worker that it does not run: taken by a claim whose
-- answer the worker gave up on (a silent database delivers a held statement
-- late; through PgBouncer a cut-off statement may still run), so no worker runs
-- them, and the rescue never takes a living worker's jobs. Run after
-- give_up_claims, it finds all that the given-up claims took. Each run such a
-- claim started is closed as stopped. Each job goes back to the queue, due now,
-- and wakes the listening workers as an inserted job does; unless a newer job of
-- its queueing lock waits, which will do its work: then it ends failed, as the
-- rescue ends such a job (agnt_retry_lost_job, docs/schema.sql). Returns the
-- jobs given back, and which of them were superseded so.
WITH lost AS (
    SELECT id, attempts, queue_name
    FROM procrastinate_jobs
    WHERE worker_id = %(worker_id)s AND status = 'doing'
      AND NOT (id = ANY(%(running)s::bigint[]))
    ORDER BY id
    FOR UPDATE
), runs AS (
    UPDATE job_runs AS run
    SET finished_at = now(), status = 'stopped', error = %(error)s
    FROM lost
    WHERE run.job_id = lost.id AND run.attempt = lost.attempts + 1
      AND run.status = 'running'
), retried AS (
    SELECT id, queue_name, agnt_retry_lost_job(id) AS retried,
           json_build_object('type', 'job_inserted', 'job_id', id)::text AS payload
    FROM lost
)
SELECT id, NOT retried AS superseded,
       CASE WHEN retried
            THEN pg_notify('procrastinate_queue_v1#' || queue_name, payload) IS NULL
       END AS woken,
       CASE WHEN retried
            THEN pg_notify('procrastinate_any_queue_v1', payload) IS NULL
       END AS woken_any
FROM retried
