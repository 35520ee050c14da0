"""The schedules table is the schedule at runtime.

Each row keeps the effective values workers follow (``cron``, ``zone``,
``misfire_policy``, ``timeout``, ``enabled``) beside the values the code declares
(``declared_*``), which only a deploy writes; ``overridden`` says that an operator's
change differs from the declaration. Rows with ``declared`` false were created in
SQL: a second schedule for an existing job body.

Postgres itself refuses a bad schedule (``agnt_schedules_check``, before every
insert and update), audits every change in ``schedule_changes`` and tells the workers
with ``NOTIFY agnt_schedules`` (``agnt_schedules_changed``, after). A declared
schedule cannot be deleted, only paused. The tick decision now takes the values a
worker planned with and refuses to decide on values that changed meanwhile.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What an operator may change, what a deploy declares, and what a worker follows.
_EFFECTIVE = ("cron", "zone", "misfire_policy", "timeout")
_WATCHED = (
    "task_name",
    "queue",
    *_EFFECTIVE,
    "enabled",
    "declared",
    *(f"declared_{name}" for name in _EFFECTIVE),
    "removed_at",
)
# Changes of these reach the workers at once (NOTIFY).
_FOLLOWED = ("task_name", "queue", *_EFFECTIVE, "enabled", "removed_at")

CRON_PROBLEM = """
CREATE FUNCTION agnt_cron_problem(_cron text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
-- What is wrong with a cron expression, or NULL when it is one workers evaluate:
-- five fields (minute hour day-of-month month day-of-week; a sixth, seconds, is
-- for tests), each a comma list of *, n or a-b, each optionally /step; months and
-- weekdays may be names (jan, mon).
DECLARE
    _fields text[];
    _names text[] := ARRAY['minute', 'hour', 'day-of-month', 'month', 'day-of-week',
                           'second'];
    _low int[] := ARRAY[0, 0, 1, 1, 0, 0];
    _high int[] := ARRAY[59, 23, 31, 12, 7, 59];
    _months text[] := ARRAY['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug',
                            'sep', 'oct', 'nov', 'dec'];
    _days text[] := ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
    _i int;
    _item text;
    _parts text[];
    _bound text;
    _value int;
    _values int[];
BEGIN
    IF _cron IS NULL OR btrim(_cron) = '' THEN
        RETURN 'it is empty: write 5 fields, minute hour day-of-month month '
               'day-of-week, e.g. ''*/5 * * * *''';
    END IF;
    _fields := regexp_split_to_array(btrim(_cron), '\\s+');
    IF array_length(_fields, 1) NOT IN (5, 6) THEN
        RETURN format('it has %s fields: write 5, minute hour day-of-month month '
                      'day-of-week, e.g. ''*/5 * * * *''', array_length(_fields, 1));
    END IF;
    FOR _i IN 1 .. array_length(_fields, 1) LOOP
        FOREACH _item IN ARRAY string_to_array(lower(_fields[_i]), ',') LOOP
            _parts := regexp_match(
                _item, '^(\\*|[a-z0-9]{1,3}(-[a-z0-9]{1,3})?)(/([0-9]{1,3}))?$');
            IF _parts IS NULL THEN
                RETURN format('the %s field %L is not *, n, a-b or a list of them, '
                              'each optionally /step', _names[_i], _fields[_i]);
            END IF;
            IF _parts[4] IS NOT NULL AND _parts[4]::int NOT BETWEEN 1 AND _high[_i] + 1
            THEN
                RETURN format('the %s field %L has step %s: use 1 to %s',
                              _names[_i], _fields[_i], _parts[4], _high[_i] + 1);
            END IF;
            CONTINUE WHEN _parts[1] = '*';
            _values := ARRAY[]::int[];
            FOREACH _bound IN ARRAY string_to_array(_parts[1], '-') LOOP
                IF _bound ~ '^[0-9]+$' THEN
                    _value := _bound::int;
                ELSIF _i = 4 THEN
                    _value := array_position(_months, _bound);
                ELSIF _i = 5 THEN
                    _value := array_position(_days, _bound) - 1;
                ELSE
                    _value := NULL;
                END IF;
                IF _value IS NULL OR _value NOT BETWEEN _low[_i] AND _high[_i] THEN
                    RETURN format('the %s field %L has %L: use %s to %s%s',
                                  _names[_i], _fields[_i], _bound, _low[_i], _high[_i],
                                  CASE _i WHEN 4 THEN ' or jan to dec'
                                          WHEN 5 THEN ' or sun to sat'
                                          ELSE '' END);
                END IF;
                _values := _values || _value;
            END LOOP;
            IF array_length(_values, 1) = 2 AND _values[1] > _values[2] THEN
                RETURN format('the %s field %L has the range %s backwards',
                              _names[_i], _fields[_i], _parts[1]);
            END IF;
        END LOOP;
    END LOOP;
    RETURN NULL;
END;
$$
"""

CHECK = """
CREATE FUNCTION agnt_schedules_check() RETURNS trigger
LANGUAGE plpgsql AS $$
-- Before an insert or update of schedules: refuse a bad schedule with a message
-- naming the column and what it admits; fill what an SQL insert may leave out.
DECLARE
    _problem text;
    _deploy boolean := COALESCE(current_setting('agnt.change_source', true), '')
                       = 'deploy';
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.task_name := COALESCE(NEW.task_name, NEW.id);
        IF NEW.id !~ '^[a-z][a-z0-9_]{0,127}$' THEN
            RAISE EXCEPTION 'schedules.id %: use lower-case letters, digits and '
                'underscores, starting with a letter, at most 128 characters',
                quote_literal(NEW.id)
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    IF NOT _deploy AND (
        (TG_OP = 'INSERT' AND (NEW.declared OR NEW.declared_cron IS NOT NULL
                               OR NEW.declared_zone IS NOT NULL
                               OR NEW.declared_misfire_policy IS NOT NULL
                               OR NEW.declared_timeout IS NOT NULL))
        OR (TG_OP = 'UPDATE' AND (NEW.declared, NEW.declared_cron, NEW.declared_zone,
                                  NEW.declared_misfire_policy, NEW.declared_timeout)
            IS DISTINCT FROM (OLD.declared, OLD.declared_cron, OLD.declared_zone,
                              OLD.declared_misfire_policy, OLD.declared_timeout)))
    THEN
        RAISE EXCEPTION 'schedules.declared*: the declaration is written by deploys '
            'from the code; change cron, zone, misfire_policy or timeout instead'
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'INSERT' OR NEW.task_name IS DISTINCT FROM OLD.task_name THEN
        IF NOT NEW.declared AND NOT EXISTS (
            SELECT 1 FROM schedules s
            WHERE s.id = NEW.task_name AND s.declared AND s.has_body
              AND s.removed_at IS NULL)
        THEN
            RAISE EXCEPTION 'schedules.task_name % is not a job with a body: use the '
                'id of a declared schedule (SELECT id FROM schedules WHERE declared '
                'AND has_body AND removed_at IS NULL)', quote_literal(NEW.task_name)
                USING ERRCODE = 'check_violation';
        END IF;
        IF TG_OP = 'UPDATE' AND OLD.declared THEN
            RAISE EXCEPTION 'schedules.task_name of the declared schedule % is its '
                'job: it cannot change', OLD.id USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    IF TG_OP = 'INSERT' OR NEW.cron IS DISTINCT FROM OLD.cron THEN
        _problem := agnt_cron_problem(NEW.cron);
        IF _problem IS NOT NULL THEN
            RAISE EXCEPTION 'schedules.cron % is not a valid cron: %',
                quote_literal(NEW.cron), _problem USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    -- pg_timezone_names reads the zone files (~20 ms): a zone some schedule
    -- already has was checked when it came in.
    IF (TG_OP = 'INSERT' OR NEW.zone IS DISTINCT FROM OLD.zone)
       AND NOT EXISTS (SELECT 1 FROM schedules s WHERE s.zone = NEW.zone)
       AND NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = NEW.zone)
    THEN
        RAISE EXCEPTION 'schedules.zone % is not a time zone: use a name from '
            'pg_timezone_names, e.g. ''Asia/Makassar'' (WITA)', quote_literal(NEW.zone)
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.misfire_policy IS NULL OR NEW.misfire_policy NOT IN ('skip', 'catch_up') THEN
        RAISE EXCEPTION 'schedules.misfire_policy % is not a policy: use ''skip'' '
            'or ''catch_up''', quote_nullable(NEW.misfire_policy) USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.timeout IS NULL OR NEW.timeout <= interval '0' THEN
        RAISE EXCEPTION 'schedules.timeout % must be positive, e.g. ''30 minutes''',
            quote_nullable(NEW.timeout) USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.queue IS NULL OR NEW.queue = '' THEN
        NEW.queue := COALESCE(
            (SELECT s.queue FROM schedules s WHERE s.id = NEW.task_name), 'default');
    END IF;
    -- When it runs next is the workers' to compute: until one has, it is unknown.
    IF TG_OP = 'UPDATE' AND (NEW.cron, NEW.zone) IS DISTINCT FROM (OLD.cron, OLD.zone)
       AND NEW.next_run_at IS NOT DISTINCT FROM OLD.next_run_at THEN
        NEW.next_run_at := NULL;
    END IF;
    RETURN NEW;
END;
$$
"""


def _changed(columns: Sequence[str], old: str, new: str) -> str:
    return " OR ".join(f"{old}.{c} IS DISTINCT FROM {new}.{c}" for c in columns)


def _object(row: str) -> str:
    return (
        "jsonb_build_object(" + ", ".join(f"'{c}', {row}.{c}" for c in _WATCHED) + ")"
    )


CHANGED = f"""
CREATE FUNCTION agnt_schedules_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
-- After a change of schedules: one audit row per changed schedule (an update
-- records only the columns it changed), and a NOTIFY to every worker when what
-- they follow changed. ``changed_by`` is the database role and application_name
-- unless the CLI or the admin named who acted (agnt.changed_by).
DECLARE
    _by text := COALESCE(
        NULLIF(current_setting('agnt.changed_by', true), ''),
        session_user || ' (' || COALESCE(
            NULLIF(current_setting('application_name', true), ''), 'no application_name'
        ) || ')');
    _source text := COALESCE(NULLIF(current_setting('agnt.change_source', true), ''),
                             'sql');
    _old jsonb;
    _new jsonb;
BEGIN
    IF TG_OP = 'UPDATE' AND NOT ({_changed(_WATCHED, "OLD", "NEW")}) THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        _old := {_object("OLD")};
    END IF;
    IF TG_OP <> 'DELETE' THEN
        _new := {_object("NEW")};
    END IF;
    IF TG_OP = 'UPDATE' THEN
        SELECT jsonb_object_agg(o.key, o.value), jsonb_object_agg(o.key, _new -> o.key)
        INTO _old, _new
        FROM jsonb_each(_old) o WHERE o.value IS DISTINCT FROM _new -> o.key;
    END IF;
    INSERT INTO schedule_changes (schedule_id, changed_by, source, old, new)
    VALUES (COALESCE(NEW.id, OLD.id), _by, _source, _old, _new);
    IF TG_OP <> 'UPDATE' OR {_changed(_FOLLOWED, "OLD", "NEW")} THEN
        PERFORM pg_notify('agnt_schedules', COALESCE(NEW.id, OLD.id));
    END IF;
    RETURN NULL;
END;
$$
"""

NO_DELETE = """
CREATE FUNCTION agnt_schedules_no_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
-- A schedule the code declares is paused, never deleted (its job would come back
-- at the next worker start, its history would go).
BEGIN
    IF OLD.declared AND OLD.removed_at IS NULL THEN
        RAISE EXCEPTION 'schedule % is declared in the code: pause it (UPDATE '
            'schedules SET enabled = false WHERE id = %) instead of deleting it',
            OLD.id, quote_literal(OLD.id) USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN OLD;
END;
$$
"""

_ARGS = (
    "_schedule_id text, _queue text, _lock text, _queueing_lock text, "
    "_priority integer, _tick bigint, _retry_when_queued boolean, _worker_id bigint"
)

DEFER = """
CREATE FUNCTION agnt_defer_schedule_tick(
    _schedule_id text, _task_name text, _cron text, _zone text, _queue text,
    _lock text, _queueing_lock text, _priority integer, _tick bigint,
    _retry_when_queued boolean, _worker_id bigint
) RETURNS TABLE (outcome text, job_id bigint)
LANGUAGE plpgsql AS $$
-- Decide one tick that a worker planned with the schedule's task, cron and zone:
-- 'changed' (nothing recorded) when they are no longer the row's, so a decision
-- never follows values an operator replaced before it was taken.
DECLARE
    _tick_at timestamptz := to_timestamp(_tick);
    _row schedules%ROWTYPE;
    _job_id bigint;
    _constraint text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('agnt_schedule:' || _schedule_id, 0));
    -- FOR SHARE: a change committed before this point is seen; one issued after
    -- it waits until this tick is decided.
    SELECT * INTO _row FROM schedules s WHERE s.id = _schedule_id FOR SHARE;
    IF NOT FOUND OR _row.removed_at IS NOT NULL OR _row.task_name <> _task_name
       OR _row.cron <> _cron OR _row.zone <> _zone OR _row.queue <> _queue THEN
        RETURN QUERY SELECT 'changed'::text, NULL::bigint;
        RETURN;
    END IF;
    IF _tick_at <= agnt_schedule_last_tick(_schedule_id) THEN
        RETURN QUERY SELECT 'handled'::text, NULL::bigint;
        RETURN;
    END IF;
    IF NOT _row.enabled THEN
        INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, reason, worker_id)
        VALUES (_schedule_id, _tick_at, 'skipped', 'paused', _worker_id);
        RETURN QUERY SELECT 'paused'::text, NULL::bigint;
        RETURN;
    END IF;
    BEGIN
        _job_id := procrastinate_defer_periodic_job_v2(
            _queue, _lock, _queueing_lock, _task_name, _priority, _schedule_id,
            _tick, jsonb_build_object('timestamp', _tick));
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS _constraint = CONSTRAINT_NAME;
        IF _constraint IS DISTINCT FROM 'procrastinate_jobs_queueing_lock_idx_v1' THEN
            RAISE;
        END IF;
        -- A run of the job is still waiting: at most one waits per job.
        IF _retry_when_queued THEN
            RETURN QUERY SELECT 'queued'::text, NULL::bigint;
            RETURN;
        END IF;
        INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, reason, worker_id)
        VALUES (_schedule_id, _tick_at, 'skipped', 'queued', _worker_id);
        RETURN QUERY SELECT 'skipped'::text, NULL::bigint;
        RETURN;
    END;
    IF _job_id IS NULL THEN
        RETURN QUERY SELECT 'handled'::text, NULL::bigint;
        RETURN;
    END IF;
    INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, job_id, worker_id)
    VALUES (_schedule_id, _tick_at, 'deferred', _job_id, _worker_id);
    RETURN QUERY SELECT 'deferred'::text, _job_id;
END;
$$
"""

DECLARE_SCHEDULES = """
CREATE FUNCTION agnt_declare_schedules(
    _ids text[], _crons text[], _zones text[], _queues text[], _policies text[],
    _timeouts interval[], _descriptions text[], _has_body boolean[],
    _next_run_at timestamptz[]
) RETURNS SETOF text
LANGUAGE plpgsql AS $$
-- A deploy: every schedule the code declares is inserted or its declaration
-- refreshed. Where an operator changed a value (it differs from the previous
-- declaration) the change stands; elsewhere the new declaration takes effect.
-- Declared schedules the code dropped are marked removed; their ids are returned.
-- Sorted, so that workers starting together lock the rows in the same order.
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
        last_seen = now(), removed_at = NULL;
    RETURN QUERY
    UPDATE schedules SET removed_at = now()
    WHERE declared AND removed_at IS NULL AND NOT (id = ANY(_ids))
    RETURNING id;
END;
$$
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
       r.result AS last_run_result, r.error AS last_run_error{columns}
FROM schedules s
LEFT JOIN LATERAL (
    SELECT tick_at, outcome, reason FROM schedule_ticks
    WHERE schedule_id = s.id ORDER BY tick_at DESC LIMIT 1
) t ON true
LEFT JOIN LATERAL (
    SELECT job_id, status, started_at, finished_at, result, error FROM job_runs
    WHERE task_name = s.task_name ORDER BY started_at DESC LIMIT 1
) r ON true
"""

_OVERVIEW_COLUMNS = """,
       s.task_name, s.timeout, s.declared, s.declared_cron, s.declared_zone,
       s.declared_misfire_policy, s.declared_timeout, s.overridden"""

# One row per job even where several schedules run the same job: the schedule is
# the one whose tick deferred it, else the job's own declared schedule.
AUDIT = """
CREATE OR REPLACE VIEW job_run_audit AS
SELECT j.id AS job_id, j.task_name AS job_name,
       COALESCE(t.schedule_id,
                (SELECT s.id FROM schedules s WHERE s.id = j.task_name))
           AS schedule_id,
       CASE WHEN t.job_id IS NULL THEN 'manual' ELSE 'schedule' END AS trigger,
       COALESCE(t.tick_at, CASE WHEN j.args->>'timestamp' ~ '^[0-9]+$'
                                THEN to_timestamp((j.args->>'timestamp')::bigint) END)
           AS scheduled_tick,
       ev.deferred_at, ev.started_at, ev.finished_at,
       ev.finished_at - ev.started_at AS duration,
       j.status::text AS status, j.attempts, j.queue_name,
       r.worker_name, COALESCE(r.worker_id, j.worker_id) AS worker_id,
       r.result, r.error
FROM procrastinate_jobs j
LEFT JOIN schedule_ticks t ON t.job_id = j.id
LEFT JOIN LATERAL (
    SELECT min(e.at) FILTER (WHERE e.type = 'deferred') AS deferred_at,
           max(e.at) FILTER (WHERE e.type = 'started') AS started_at,
           max(e.at) FILTER (WHERE e.type IN ('succeeded', 'failed', 'aborted',
                                              'cancelled')) AS finished_at
    FROM procrastinate_events e WHERE e.job_id = j.id
) ev ON true
LEFT JOIN LATERAL (
    SELECT worker_name, worker_id, result, error FROM job_runs
    WHERE job_runs.job_id = j.id ORDER BY attempt DESC LIMIT 1
) r ON true
"""


def upgrade() -> None:
    op.add_column(
        "schedules",
        sa.Column(
            "declared", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )
    op.add_column(
        "schedules",
        sa.Column(
            "timeout",
            sa.Interval(),
            server_default=sa.text("'01:00:00'::interval"),
            nullable=False,
        ),
    )
    for name, type_ in (
        ("cron", sa.Text()),
        ("zone", sa.Text()),
        ("misfire_policy", sa.Text()),
        ("timeout", sa.Interval()),
    ):
        op.add_column("schedules", sa.Column(f"declared_{name}", type_, nullable=True))
    # Every row so far came from the code; its values were the declaration.
    op.execute(
        "UPDATE schedules SET declared = true, declared_cron = cron, "
        "declared_zone = zone, declared_misfire_policy = misfire_policy, "
        "declared_timeout = timeout"
    )
    op.add_column(
        "schedules",
        sa.Column(
            "overridden",
            sa.Boolean(),
            sa.Computed(
                "declared AND (cron, zone, misfire_policy, timeout) IS DISTINCT FROM "
                "(declared_cron, declared_zone, declared_misfire_policy, "
                "declared_timeout)",
                persisted=True,
            ),
            nullable=False,
        ),
    )
    op.alter_column("schedules", "queue", server_default=sa.text("'default'"))
    op.alter_column("schedules", "description", server_default=sa.text("''"))
    op.alter_column("schedules", "has_body", server_default=sa.text("true"))
    op.alter_column(
        "schedules", "misfire_policy", server_default=sa.text("'skip'::text")
    )
    op.alter_column("schedules", "zone", server_default=sa.text("'Asia/Makassar'"))
    op.create_check_constraint(
        op.f("ck_schedules_timeout"), "schedules", "timeout > interval '0'"
    )
    # Deleting a schedule created in SQL takes its tick records with it.
    op.drop_constraint(
        op.f("fk_schedule_ticks_schedule_id_schedules"), "schedule_ticks", "foreignkey"
    )
    op.create_foreign_key(
        op.f("fk_schedule_ticks_schedule_id_schedules"),
        "schedule_ticks",
        "schedules",
        ["schedule_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_table(
        "schedule_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("schedule_id", sa.Text(), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("changed_by", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("old", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("new", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_changes")),
    )
    op.create_index(
        "ix_schedule_changes_schedule_id_changed_at",
        "schedule_changes",
        ["schedule_id", "changed_at"],
    )
    for statement in (CRON_PROBLEM, CHECK, CHANGED, NO_DELETE, DEFER):
        op.execute(statement)
    op.execute(DECLARE_SCHEDULES)
    op.execute(
        "CREATE TRIGGER agnt_schedules_check BEFORE INSERT OR UPDATE ON schedules "
        "FOR EACH ROW EXECUTE FUNCTION agnt_schedules_check()"
    )
    op.execute(
        "CREATE TRIGGER agnt_schedules_changed AFTER INSERT OR UPDATE OR DELETE "
        "ON schedules FOR EACH ROW EXECUTE FUNCTION agnt_schedules_changed()"
    )
    op.execute(
        "CREATE TRIGGER agnt_schedules_no_delete BEFORE DELETE ON schedules "
        "FOR EACH ROW EXECUTE FUNCTION agnt_schedules_no_delete()"
    )
    op.execute(OVERVIEW.format(columns=_OVERVIEW_COLUMNS))
    op.execute(AUDIT)


def downgrade() -> None:
    # The overview without this revision's columns; the audit view stays as it
    # is, it reads nothing this revision adds.
    op.execute("DROP VIEW schedule_overview")
    op.execute(OVERVIEW.format(columns=""))
    for trigger in (
        "agnt_schedules_no_delete",
        "agnt_schedules_changed",
        "agnt_schedules_check",
    ):
        op.execute(f"DROP TRIGGER {trigger} ON schedules")
    op.execute(
        "DROP FUNCTION agnt_declare_schedules(text[], text[], text[], text[], "
        "text[], interval[], text[], boolean[], timestamptz[])"
    )
    op.execute(
        "DROP FUNCTION agnt_defer_schedule_tick(text, text, text, text, text, text, "
        "text, integer, bigint, boolean, bigint)"
    )
    for function in (
        "agnt_schedules_no_delete()",
        "agnt_schedules_changed()",
        "agnt_schedules_check()",
        "agnt_cron_problem(text)",
    ):
        op.execute(f"DROP FUNCTION {function}")
    op.drop_index(
        "ix_schedule_changes_schedule_id_changed_at", table_name="schedule_changes"
    )
    op.drop_table("schedule_changes")
    op.execute(
        "DELETE FROM schedule_ticks WHERE schedule_id IN "
        "(SELECT id FROM schedules WHERE NOT declared)"
    )
    op.execute("DELETE FROM schedules WHERE NOT declared")
    op.drop_constraint(
        op.f("fk_schedule_ticks_schedule_id_schedules"), "schedule_ticks", "foreignkey"
    )
    op.create_foreign_key(
        op.f("fk_schedule_ticks_schedule_id_schedules"),
        "schedule_ticks",
        "schedules",
        ["schedule_id"],
        ["id"],
    )
    op.drop_constraint(op.f("ck_schedules_timeout"), "schedules", "check")
    for column in ("queue", "description", "has_body", "misfire_policy", "zone"):
        op.alter_column("schedules", column, server_default=None)
    for column in (
        "overridden",
        "declared_timeout",
        "declared_misfire_policy",
        "declared_zone",
        "declared_cron",
        "timeout",
        "declared",
    ):
        op.drop_column("schedules", column)
