"""No schedules row can stop a worker; ids do not move; a changed cron starts from
the change; a retried run keeps its time.

- ``agnt_schedule_problem(schedules)`` says what makes a row one a worker cannot
  follow (NULL: none): a timeout outside 1 second to 7 days, a cron Postgres
  refuses, an unknown misfire policy, a queue name Procrastinate cannot store, an
  instant Python cannot read, a job that is not one. The trigger
  ``agnt_schedules_hold`` refuses a write that brings such a problem, and any change
  of ``id``. A row written past it (the owner disabled the triggers) is read
  through the view ``schedule_rows``: each value a reader can use, NULL where it
  cannot, and the ``problem``; the deferrer sets the schedule aside and records why
  in ``schedule_faults``, which the view shows as ``fault``.
- ``schedules.cron_changed_at``: when the cron, the zone or the job of a schedule
  last changed (set by the same trigger). Ticks before it never run.
- ``schedule_ticks``' instants are bounded alike (a CHECK no trigger switch undoes).
- ``agnt_retry_run`` defers the retry of a run for later (``scheduled_at``, or a
  tick in the future) for that time, not now.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The bounds of a run's timeout, and of an instant Python reads (its datetime spans
# years 1 to 9999; a day of margin either side for the zone offsets).
TIMEOUT_FLOOR = "1 second"
TIMEOUT_CEILING = "7 days"
EARLIEST = "0001-01-03 00:00+00"
LATEST = "9999-12-29 00:00+00"

FUNCTIONS = [
    f"""
CREATE FUNCTION agnt_timeout_problem(_column text, _value interval) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
-- What is wrong with a run's timeout, or NULL.
    SELECT CASE WHEN _value IS NULL
                     OR _value < interval '{TIMEOUT_FLOOR}'
                     OR _value > interval '{TIMEOUT_CEILING}'
                THEN format('schedules.%s %s is outside {TIMEOUT_FLOOR} to '
                            '{TIMEOUT_CEILING}: use e.g. ''30 minutes''', _column,
                            quote_nullable(_value)) END
$$
""",
    f"""
CREATE FUNCTION agnt_instant_problem(_column text, _value timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
-- What is wrong with an instant a reader reads, or NULL (NULL is none).
    SELECT CASE WHEN _value IS NOT NULL
                     AND NOT (_value > '{EARLIEST}' AND _value < '{LATEST}')
                THEN format('schedules.%s %s is not a time a reader can use: '
                            'give one between years 1 and 9999', _column,
                            quote_literal(_value)) END
$$
""",
    f"""
CREATE FUNCTION agnt_schedule_problem(_s schedules) RETURNS text
LANGUAGE plpgsql STABLE AS $$
-- What makes a schedules row one that no worker can follow, or NULL: the first
-- problem found, in words that say what to write instead. The zone is Python's to
-- judge (pg_timezone_names is too slow to read per row). Read at every pass of
-- every worker: the common case is a few comparisons and the cron's check.
DECLARE
    _cron text;
BEGIN
    IF _s.id IS NULL OR _s.id !~ '^[a-z][a-z0-9_]{{0,127}}$' THEN
        RETURN format('schedules.id %s: use lower-case letters, digits and '
                      'underscores, starting with a letter, at most 128 characters',
                      quote_nullable(_s.id));
    END IF;
    IF _s.declared AND _s.task_name IS DISTINCT FROM _s.id THEN
        RETURN format('schedules.task_name %s of the declared schedule %s is not '
                      'its id', quote_nullable(_s.task_name), _s.id);
    END IF;
    IF NOT _s.declared AND NOT EXISTS (
        SELECT 1 FROM schedules d
        WHERE d.id = _s.task_name AND d.declared AND d.has_body
          AND d.removed_at IS NULL)
    THEN
        RETURN format('schedules.task_name %s is not a job with a body',
                      quote_nullable(_s.task_name));
    END IF;
    _cron := agnt_cron_problem(_s.cron);
    IF _cron IS NOT NULL THEN
        RETURN format('schedules.cron %s is not a valid cron: %s',
                      quote_nullable(_s.cron), _cron);
    END IF;
    IF _s.misfire_policy IS NULL OR _s.misfire_policy NOT IN ('skip', 'catch_up') THEN
        RETURN format('schedules.misfire_policy %s is not a policy: use ''skip'' or '
                      '''catch_up''', quote_nullable(_s.misfire_policy));
    END IF;
    IF _s.queue IS NULL OR length(_s.queue) NOT BETWEEN 1 AND 128 THEN
        RETURN format('schedules.queue %s: use a name of 1 to 128 characters',
                      quote_nullable(left(_s.queue, 40)
                                     || CASE WHEN length(_s.queue) > 40
                                             THEN '...' ELSE '' END));
    END IF;
    IF _s.timeout BETWEEN interval '{TIMEOUT_FLOOR}' AND interval '{TIMEOUT_CEILING}'
       AND (_s.declared_timeout IS NULL
            OR _s.declared_timeout BETWEEN interval '{TIMEOUT_FLOOR}'
                                       AND interval '{TIMEOUT_CEILING}')
       AND _s.first_seen > '{EARLIEST}' AND _s.first_seen < '{LATEST}'
       AND _s.last_seen > '{EARLIEST}' AND _s.last_seen < '{LATEST}'
       AND (_s.next_run_at IS NULL
            OR (_s.next_run_at > '{EARLIEST}' AND _s.next_run_at < '{LATEST}'))
       AND (_s.removed_at IS NULL
            OR (_s.removed_at > '{EARLIEST}' AND _s.removed_at < '{LATEST}'))
       AND (_s.cron_changed_at IS NULL
            OR (_s.cron_changed_at > '{EARLIEST}' AND _s.cron_changed_at < '{LATEST}'))
    THEN
        RETURN NULL;
    END IF;
    -- Something is out of bounds: which, in words.
    RETURN COALESCE(
        agnt_timeout_problem('timeout', _s.timeout),
        CASE WHEN _s.declared_timeout IS NOT NULL
             THEN agnt_timeout_problem('declared_timeout', _s.declared_timeout) END,
        agnt_instant_problem('next_run_at', _s.next_run_at),
        agnt_instant_problem('cron_changed_at', _s.cron_changed_at),
        agnt_instant_problem('first_seen', _s.first_seen),
        agnt_instant_problem('last_seen', _s.last_seen),
        agnt_instant_problem('removed_at', _s.removed_at));
EXCEPTION WHEN OTHERS THEN
    -- A row that fails its own check is a problem of that row, not of the read
    -- of every row.
    RETURN format('schedules row %s cannot be checked: %s', quote_nullable(_s.id),
                  SQLERRM);
END;
$$
""",
    """
CREATE FUNCTION agnt_schedules_hold() RETURNS trigger
LANGUAGE plpgsql AS $$
-- Before an insert or update of schedules (after agnt_schedules_check, whose
-- messages come first): a schedule's id never changes, since ticks, runs, audit
-- rows and links name it; a write that brings a problem no worker could follow
-- is refused (a row that has one already may still be paused or mended). A change
-- of what decides its ticks (cron, zone, job) is stamped in cron_changed_at, and
-- lifts the fault a worker recorded: the workers judge the new values.
DECLARE
    _problem text;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id IS DISTINCT FROM OLD.id THEN
        RAISE EXCEPTION 'schedules.id of % cannot change: ticks, runs and links '
            'name it; create a new schedule instead', quote_literal(OLD.id)
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'UPDATE'
       AND (NEW.cron, NEW.zone, NEW.task_name)
           IS DISTINCT FROM (OLD.cron, OLD.zone, OLD.task_name)
       AND NEW.cron_changed_at IS NOT DISTINCT FROM OLD.cron_changed_at
    THEN
        NEW.cron_changed_at := clock_timestamp();
    END IF;
    _problem := agnt_schedule_problem(NEW);
    IF _problem IS NOT NULL
       AND (TG_OP = 'INSERT' OR _problem IS DISTINCT FROM agnt_schedule_problem(OLD))
    THEN
        RAISE EXCEPTION '%', _problem USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.task_name, NEW.cron, NEW.zone, NEW.queue,
                             NEW.misfire_policy, NEW.timeout, NEW.removed_at)
        IS DISTINCT FROM (OLD.task_name, OLD.cron, OLD.zone, OLD.queue,
                          OLD.misfire_policy, OLD.timeout, OLD.removed_at)
    THEN
        DELETE FROM schedule_faults WHERE schedule_id = OLD.id;
    END IF;
    RETURN NEW;
END;
$$
""",
]

RETRY = """
CREATE OR REPLACE FUNCTION agnt_retry_run(_job_id bigint, _by text DEFAULT NULL,
                                          _source text DEFAULT 'sql')
RETURNS bigint
LANGUAGE plpgsql AS $$
-- Run again a run that failed, timed out or was cancelled: a new job with the same
-- job, arguments (its tick), queue, priority and lock; its id. A run set for a
-- later time (its scheduled_at, or its tick) is retried for that time, never
-- before: a retry acts as of the moment of the run it retries. Without the
-- queueing lock, so that retrying several ticks of a job queues each. A run whose
-- retry is waiting, running or succeeded is not retried twice.
DECLARE
    _job procrastinate_jobs%ROWTYPE;
    _previous bigint;
    _previous_status text;
    _new_id bigint;
    _at timestamptz;
BEGIN
    SELECT * INTO _job FROM procrastinate_jobs WHERE id = _job_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no run with job id %', _job_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'SELECT job_id FROM job_run_audit shows the runs';
    END IF;
    IF _job.status NOT IN ('failed', 'cancelled', 'aborted') THEN
        RAISE EXCEPTION 'job % is %: only a failed, timed-out or cancelled run is '
            'retried', _job_id, _job.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT a.new_job_id, j.status::text INTO _previous, _previous_status
    FROM job_run_actions a JOIN procrastinate_jobs j ON j.id = a.new_job_id
    WHERE a.job_id = _job_id AND a.action = 'retry'
      AND j.status IN ('todo', 'doing', 'succeeded')
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'job % was already retried as job % (%)', _job_id,
            _previous, _previous_status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    _at := GREATEST(_job.scheduled_at,
                    CASE WHEN _job.args->>'timestamp' ~ '^[0-9]{1,11}$'
                         THEN to_timestamp((_job.args->>'timestamp')::bigint) END);
    IF _at <= now() THEN
        _at := NULL;
    END IF;
    _new_id := (procrastinate_defer_jobs_v1(ARRAY[ROW(
        _job.queue_name, _job.task_name, _job.priority, _job.lock, NULL,
        _job.args, _at)::procrastinate_job_to_defer_v1]))[1];
    INSERT INTO job_run_actions (job_id, action, requested_by, source, new_job_id)
    VALUES (_job_id, 'retry', {who}, _source, _new_id);
    RETURN _new_id;
END;
$$
"""

# The previous definition, for the downgrade.
RETRY_BEFORE = """
CREATE OR REPLACE FUNCTION agnt_retry_run(_job_id bigint, _by text DEFAULT NULL,
                                          _source text DEFAULT 'sql')
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    _job procrastinate_jobs%ROWTYPE;
    _previous bigint;
    _previous_status text;
    _new_id bigint;
BEGIN
    SELECT * INTO _job FROM procrastinate_jobs WHERE id = _job_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no run with job id %', _job_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'SELECT job_id FROM job_run_audit shows the runs';
    END IF;
    IF _job.status NOT IN ('failed', 'cancelled', 'aborted') THEN
        RAISE EXCEPTION 'job % is %: only a failed, timed-out or cancelled run is '
            'retried', _job_id, _job.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT a.new_job_id, j.status::text INTO _previous, _previous_status
    FROM job_run_actions a JOIN procrastinate_jobs j ON j.id = a.new_job_id
    WHERE a.job_id = _job_id AND a.action = 'retry'
      AND j.status IN ('todo', 'doing', 'succeeded')
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'job % was already retried as job % (%)', _job_id,
            _previous, _previous_status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    _new_id := (procrastinate_defer_jobs_v1(ARRAY[ROW(
        _job.queue_name, _job.task_name, _job.priority, _job.lock, NULL,
        _job.args, NULL)::procrastinate_job_to_defer_v1]))[1];
    INSERT INTO job_run_actions (job_id, action, requested_by, source, new_job_id)
    VALUES (_job_id, 'retry', {who}, _source, _new_id);
    RETURN _new_id;
END;
$$
"""

# Who asks, when the caller does not say: the database role and application_name.
_WHO = """COALESCE(NULLIF(_by, ''), session_user || ' (' || COALESCE(
        NULLIF(current_setting('application_name', true), ''),
        'no application_name') || ')')"""


def _readable(column: str, problem: str) -> str:
    return f"CASE WHEN {problem} IS NULL THEN s.{column} END AS {column}"


ROWS = f"""
CREATE VIEW schedule_rows AS
-- Every schedules row as a reader can take it: a value no reader can use (a
-- timeout or an instant out of range) is NULL, and ``problem`` says why the row
-- cannot be followed; ``fault`` is what a worker that set it aside found.
SELECT s.id, s.task_name, s.cron, s.zone, s.queue, s.misfire_policy,
       {_readable("timeout", "agnt_timeout_problem('timeout', s.timeout)")},
       s.description, s.has_body, s.enabled,
       {_readable("first_seen", "agnt_instant_problem('', s.first_seen)")},
       {_readable("last_seen", "agnt_instant_problem('', s.last_seen)")},
       {_readable("removed_at", "agnt_instant_problem('', s.removed_at)")},
       {_readable("next_run_at", "agnt_instant_problem('', s.next_run_at)")},
       s.declared, s.declared_cron, s.declared_zone, s.declared_misfire_policy,
       {_readable("declared_timeout", "agnt_timeout_problem('', s.declared_timeout)")},
       s.overridden,
       {_readable("cron_changed_at", "agnt_instant_problem('', s.cron_changed_at)")},
       agnt_schedule_problem(s) AS problem, f.reason AS fault
FROM schedules s
LEFT JOIN schedule_faults f ON f.schedule_id = s.id
"""

OVERVIEW = """
CREATE OR REPLACE VIEW schedule_overview AS
SELECT s.id, s.description, s.cron, s.zone, s.queue, s.misfire_policy, s.enabled,
       s.has_body, s.first_seen, s.last_seen, s.removed_at, s.next_run_at,
       t.tick_at AS last_tick_at, t.outcome AS last_tick_outcome,
       t.reason AS last_tick_reason,
       r.job_id AS last_run_job_id, r.status AS last_run_status,
       r.started_at AS last_run_started_at, r.finished_at AS last_run_finished_at,
       r.finished_at - r.started_at AS last_run_duration,
       r.result AS last_run_result, r.error AS last_run_error,
       s.task_name, s.timeout, s.declared, s.declared_cron, s.declared_zone,
       s.declared_misfire_policy, s.declared_timeout, s.overridden{columns}
FROM {source} s
LEFT JOIN LATERAL (
    SELECT tick_at, outcome, reason FROM schedule_ticks
    WHERE schedule_id = s.id ORDER BY tick_at DESC LIMIT 1
) t ON true
LEFT JOIN LATERAL (
    SELECT job_id, status, started_at, finished_at, result, error FROM job_runs
    WHERE task_name = s.task_name ORDER BY started_at DESC LIMIT 1
) r ON true
"""

# A due tick no worker decided, of a schedule no fault explains: every worker is
# down or stuck. (A broken schedule is reported as broken, not as overdue.)
LATE_TICKS = """
CREATE OR REPLACE VIEW schedule_late_ticks AS
SELECT t.schedule_id, t.tick_at, t.missed_since,
       CASE WHEN t.outcome = 'skipped' THEN t.reason ELSE 'late' END AS kind,
       t.decided_at - t.tick_at AS defer_delay,
       ev.started_at - t.tick_at AS start_delay,
       t.job_id
FROM schedule_ticks t
LEFT JOIN LATERAL (
    SELECT min(e.at) AS started_at FROM procrastinate_events e
    WHERE e.job_id = t.job_id AND e.type = 'started'
) ev ON true
WHERE t.outcome = 'skipped'
   OR t.decided_at - t.tick_at > agnt_late_after()
   OR ev.started_at - t.tick_at > agnt_late_after()
   OR (ev.started_at IS NULL AND now() - t.tick_at > agnt_late_after()
       AND EXISTS (SELECT 1 FROM procrastinate_jobs j
                   WHERE j.id = t.job_id AND j.status = 'todo'))
UNION ALL
SELECT s.id, s.next_run_at, NULL, 'overdue', now() - s.next_run_at, NULL, NULL
FROM {source} s
WHERE s.enabled AND s.has_body AND s.removed_at IS NULL
  AND s.next_run_at < now() - agnt_late_after(){unexplained}
"""


# A deploy (each worker's start), as migration 0013 wrote it; this revision passes
# over a row no worker can follow, which the schedules checks would refuse to
# update, failing the start of every worker.
DECLARE_SCHEDULES = """
CREATE OR REPLACE FUNCTION agnt_declare_schedules(
    _ids text[], _crons text[], _zones text[], _queues text[], _policies text[],
    _timeouts interval[], _descriptions text[], _has_body boolean[],
    _next_run_at timestamptz[]
) RETURNS SETOF text
LANGUAGE plpgsql AS $$
-- A deploy: every schedule the code declares is inserted or its declaration
-- refreshed. Where an operator changed a value (it differs from the previous
-- declaration) the change stands; elsewhere the new declaration takes effect.
-- Declared schedules the code dropped are marked removed; their ids are returned.
-- Sorted, so that workers starting together lock the rows in the same order.{held_comment}
BEGIN
    PERFORM set_config('agnt.change_source', 'deploy', true);
    INSERT INTO schedules AS s (
        id, task_name, cron, zone, queue, misfire_policy, timeout, description,
        has_body, next_run_at, declared, declared_cron, declared_zone,
        declared_misfire_policy, declared_timeout)
    SELECT v.id, v.id, v.cron, v.zone, v.queue, v.policy, v.timeout, v.description,
           v.has_body, v.next_run_at, true, v.cron, v.zone, v.policy, v.timeout
    FROM unnest(_ids, _crons, _zones, _queues, _policies, _timeouts, _descriptions,
                _has_body, _next_run_at)
         AS v(id, cron, zone, queue, policy, timeout, description, has_body,
              next_run_at)
    ORDER BY v.id
    ON CONFLICT (id) DO UPDATE
    SET cron = CASE WHEN s.declared AND s.cron = s.declared_cron
                    THEN EXCLUDED.cron ELSE s.cron END,
        zone = CASE WHEN s.declared AND s.zone = s.declared_zone
                    THEN EXCLUDED.zone ELSE s.zone END,
        misfire_policy = CASE WHEN s.declared
                                   AND s.misfire_policy = s.declared_misfire_policy
                              THEN EXCLUDED.misfire_policy ELSE s.misfire_policy END,
        timeout = CASE WHEN s.declared AND s.timeout = s.declared_timeout
                       THEN EXCLUDED.timeout ELSE s.timeout END,
        next_run_at = CASE WHEN s.declared AND s.cron = s.declared_cron
                                AND s.zone = s.declared_zone
                           THEN EXCLUDED.next_run_at ELSE s.next_run_at END,
        task_name = EXCLUDED.task_name, queue = EXCLUDED.queue,
        description = EXCLUDED.description, has_body = EXCLUDED.has_body,
        declared = true, declared_cron = EXCLUDED.declared_cron,
        declared_zone = EXCLUDED.declared_zone,
        declared_misfire_policy = EXCLUDED.declared_misfire_policy,
        declared_timeout = EXCLUDED.declared_timeout,
        last_seen = now(), removed_at = NULL{held};
    RETURN QUERY
    UPDATE schedules SET removed_at = now()
    WHERE declared AND removed_at IS NULL AND NOT (id = ANY(_ids)){held_removed}
    RETURNING id;
END;
$$
"""
HELD = {
    "held": "\n    WHERE agnt_schedule_problem(s) IS NULL",
    "held_removed": "\n      AND agnt_schedule_problem(schedules) IS NULL",
    "held_comment": "\n-- A row no worker can follow is left as it is: it stays broken until mended.",
}


def upgrade() -> None:
    op.add_column(
        "schedules",
        sa.Column("cron_changed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "schedule_faults",
        sa.Column("schedule_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "noticed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("worker_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("schedule_id", name=op.f("pk_schedule_faults")),
    )
    for column in ("tick_at", "missed_since", "decided_at"):
        op.create_check_constraint(
            op.f(f"ck_schedule_ticks_{column}_readable"),
            "schedule_ticks",
            f"{column} > '{EARLIEST}' AND {column} < '{LATEST}'",
        )
    for statement in FUNCTIONS:
        op.execute(statement)
    op.execute(
        "CREATE TRIGGER agnt_schedules_hold BEFORE INSERT OR UPDATE ON schedules "
        "FOR EACH ROW EXECUTE FUNCTION agnt_schedules_hold()"
    )
    op.execute(ROWS)
    op.execute(
        OVERVIEW.format(
            columns=", s.cron_changed_at, s.problem, s.fault", source="schedule_rows"
        )
    )
    op.execute(
        LATE_TICKS.format(
            source="schedule_rows",
            unexplained="\n  AND s.problem IS NULL AND s.fault IS NULL",
        )
    )
    op.execute(RETRY.replace("{who}", _WHO))
    op.execute(DECLARE_SCHEDULES.format(**HELD))


def downgrade() -> None:
    op.execute(DECLARE_SCHEDULES.format(**dict.fromkeys(HELD, "")))
    op.execute(RETRY_BEFORE.replace("{who}", _WHO))
    op.execute(LATE_TICKS.format(source="schedules", unexplained=""))
    op.execute("DROP VIEW schedule_overview")
    op.execute(OVERVIEW.format(columns="", source="schedules"))
    op.execute("DROP VIEW schedule_rows")
    op.execute("DROP TRIGGER agnt_schedules_hold ON schedules")
    for function in (
        "agnt_schedules_hold()",
        "agnt_schedule_problem(schedules)",
        "agnt_instant_problem(text, timestamptz)",
        "agnt_timeout_problem(text, interval)",
    ):
        op.execute(f"DROP FUNCTION {function}")
    for column in ("tick_at", "missed_since", "decided_at"):
        op.drop_constraint(
            op.f(f"ck_schedule_ticks_{column}_readable"), "schedule_ticks", "check"
        )
    op.drop_table("schedule_faults")
    op.drop_column("schedules", "cron_changed_at")
