-- GET /metrics: what a scrape reads, in one read-only snapshot. Each query reads
-- counters kept as runs end (job_run_totals, job_run_duration_buckets), the
-- schedules table, or rows a partial index already narrows to the work still to
-- do, so a scrape costs the same at a million bookings and a month of history.
-- Ages are differences of epochs: a row may hold 'infinity', which Postgres will
-- not subtract from now(), and whose epoch is Infinity (+Inf to Prometheus).

-- schedules --
-- Every schedule the database knows and has not retired, with the newest
-- successful run of its job (any run of the job: a run now counts too), read
-- through schedule_rows (a value no reader can use is NULL; ``problem`` and
-- ``fault`` say why the schedule is broken).
SELECT s.id, s.task_name, s.cron, s.zone, s.queue, s.misfire_policy, s.timeout,
       s.enabled, s.next_run_at, s.overridden, s.problem, s.fault,
       t.last_finished_at AS last_success_at
FROM schedule_rows s
LEFT JOIN job_run_totals t ON t.task_name = s.task_name AND t.status = 'succeeded'
WHERE s.removed_at IS NULL
ORDER BY s.id

-- run_totals --
-- Finished runs per job and status, ever, with the sum of their durations.
SELECT task_name, status, runs, duration_seconds FROM job_run_totals
ORDER BY task_name, status

-- duration_buckets --
-- Finished runs per job and duration bucket (not cumulative; 'Infinity' last).
SELECT task_name, le, runs FROM job_run_duration_buckets ORDER BY task_name, le

-- queues --
-- Jobs waiting (todo) and running (doing) per queue, and how long the oldest due
-- waiting job has waited (since it was deferred or since its scheduled time,
-- whichever is later); every queue a schedule uses is listed, with 0 if empty.
WITH live AS (
    SELECT j.id, j.queue_name, j.status::text AS status, j.scheduled_at
    FROM procrastinate_jobs j
    WHERE j.status IN ('todo', 'doing')
), waiting_since AS (
    SELECT l.queue_name,
           GREATEST(l.scheduled_at, (SELECT min(e.at) FROM procrastinate_events e
                                     WHERE e.job_id = l.id AND e.type = 'deferred'))
               AS since
    FROM live l
    WHERE l.status = 'todo' AND (l.scheduled_at IS NULL OR l.scheduled_at <= now())
), queues AS (
    SELECT DISTINCT queue AS queue_name FROM schedules WHERE removed_at IS NULL
    UNION SELECT queue_name FROM live
)
SELECT q.queue_name,
       (SELECT count(*) FROM live l
        WHERE l.queue_name = q.queue_name AND l.status = 'todo') AS todo,
       (SELECT count(*) FROM live l
        WHERE l.queue_name = q.queue_name AND l.status = 'doing') AS doing,
       COALESCE((SELECT extract(epoch FROM now()) - extract(epoch FROM min(w.since))
                  FROM waiting_since w
                 WHERE w.queue_name = q.queue_name), 0) AS oldest_waiting_seconds
FROM queues q
ORDER BY q.queue_name

-- workers --
-- Workers with a heartbeat within the stalled threshold, those past it, and the
-- live ones whose last heartbeat said they cannot get the connections they ask for.
SELECT count(*) FILTER (WHERE w.last_heartbeat >= now() - make_interval(
           secs => %(stalled_seconds)s)) AS alive,
       count(*) FILTER (WHERE w.last_heartbeat < now() - make_interval(
           secs => %(stalled_seconds)s)) AS silent,
       count(*) FILTER (WHERE w.last_heartbeat >= now() - make_interval(
           secs => %(stalled_seconds)s) AND s.starved_since IS NOT NULL) AS starved
FROM procrastinate_workers w
LEFT JOIN schedule_workers s ON s.worker_id = w.id

-- backlogs --
-- The outbound work still to do: messages to send (pending or failed, and how
-- late the oldest due one is), failed webhook deliveries awaiting a retry, A2A
-- envelopes waiting for dispatch or a retry. Each count reads a partial index.
SELECT
    (SELECT count(*) FROM send_queue WHERE status = 'PENDING') AS send_pending,
    (SELECT count(*) FROM send_queue WHERE status = 'FAILED') AS send_failed,
    COALESCE((SELECT extract(epoch FROM now()) - extract(epoch FROM min(next_attempt_at))
              FROM send_queue
              WHERE status IN ('PENDING', 'FAILED') AND next_attempt_at <= now()),
             0) AS send_oldest_due_seconds,
    (SELECT count(*) FROM webhook_deliveries WHERE status = 'FAILED')
        AS webhook_failed,
    (SELECT count(*) FROM a2a_envelopes WHERE status = 'PENDING') AS a2a_pending,
    (SELECT count(*) FROM a2a_envelopes WHERE status = 'DISPATCH_FAILED')
        AS a2a_dispatch_failed

-- dead_letters --
-- Dead letters nobody has resolved yet, per source.
SELECT source, count(*) AS unresolved FROM dead_letters
WHERE resolved_at IS NULL GROUP BY source ORDER BY source

-- duplicate_payments --
-- Stripe objects found made twice for one of our rows, by kind and by what became
-- of the extra one.
SELECT kind, status, count(*) AS payments FROM duplicate_payments
GROUP BY kind, status ORDER BY kind, status
