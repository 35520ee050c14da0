-- File format: a "-- name --" line, comment lines saying what the query does, the
-- query. Placeholders are psycopg's %(name)s. job_traces (docs/schema.sql) holds the
-- trace context a job carries from whoever deferred it to its run.

-- defer_jobs --
-- Procrastinate's defer_jobs, and the deferrer's traceparent for each new job in
-- the same statement: the jobs and their trace context commit together. The ids
-- come back in the order of the jobs, as Procrastinate's query returns them.
WITH deferred AS (
    SELECT unnest(procrastinate_defer_jobs_v1(
        %(jobs)s::procrastinate_job_to_defer_v1[])) AS id
), traced AS (
    INSERT INTO job_traces (job_id, traceparent)
    SELECT id, %(traceparent)s FROM deferred
    ON CONFLICT (job_id) DO NOTHING
)
SELECT id FROM deferred

-- run_traceparent --
-- The trace context a job's run continues: its deferrer's traceparent (no row for
-- a job deferred with traces off).
SELECT traceparent FROM job_traces WHERE job_id = %(job_id)s
