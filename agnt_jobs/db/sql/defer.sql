-- File format: a "-- name --" line, comment lines saying what the query does, the
-- query. Placeholders are psycopg's %(name)s. What deferring checks and does lives
-- in the SQL functions agnt_declare_jobs and agnt_defer (docs/schema.sql).

-- declare_jobs --
-- At worker start (a deploy): every job the code can run, with its queue, lock,
-- queueing lock and arguments (a JSON array); jobs the code dropped are marked
-- removed, and their ids returned.
SELECT id FROM agnt_declare_jobs(%(jobs)s::jsonb) AS id

-- defer --
-- Defer a run of a job in the caller's transaction; the id of the job that will run.
-- traceparent: the deferrer's trace context, carried to the run (NULL for none).
SELECT agnt_defer(%(job)s, %(args)s::jsonb, %(at)s, %(queueing_lock)s,
                  %(traceparent)s)
