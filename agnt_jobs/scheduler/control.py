"""What operators do with schedules: see them with their state, check the deployed
code against the database, pause, resume, change a schedule or return it to its
declaration, run a job now or at a time. The CLI (and the admin view) are thin
layers over these functions.

Changes go through the ``schedules`` table, whose triggers (docs/schema.sql) check
them, audit them in ``schedule_changes`` and tell the workers; these functions only
say who acts (``acting``), so that a change made here and one made with plain SQL
are the same change.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import attr
import psycopg
import sqlalchemy as sa
import sqlalchemy.exc
from procrastinate import exceptions
from procrastinate.jobs import JobDeferrer
from procrastinate.manager import JobManager
from procrastinate.tasks import Task
from sqlalchemy.engine import Engine

from agnt_jobs.db.connector import TracedSyncConnector
from agnt_jobs.scheduler import broken, deploy
from agnt_jobs.scheduler.bodies import (
    NotConfigured as NotConfigured,  # raised by run_now; callers catch it from here
)
from agnt_jobs.scheduler.bodies import missing_settings, require_configured
from agnt_jobs.scheduler.declaration import Schedule
from agnt_jobs.scheduler.deploy import SQL
from agnt_jobs.scheduler.worker import AgntApp
from agnt_jobs.settings import Settings

FINAL_STATUSES = ("succeeded", "failed", "cancelled", "aborted")


class UnknownId(LookupError):
    """An id that is not declared (or has no job body where one is needed)."""


class Refused(ValueError):
    """The database refused a change (a bad cron, zone, policy or timeout, a
    declared schedule deleted): the message is its one line."""


# Every instant an operator gives (a run's time, the ends of a window of runs),
# from any door, lies in this range: a job deferred centuries ahead would wait
# for ever, and a time past year 9999 is one no page could show.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
FARTHEST_AHEAD = timedelta(days=3653)  # ten years


def check_instant(name: str, when: datetime, now: datetime | None = None) -> None:
    """Refused unless ``when`` (aware) lies between 1970 and ten years from now."""
    latest = (now or datetime.now(UTC)) + FARTHEST_AHEAD
    # Aware datetimes compare without converting: no overflow near year 1 or 9999.
    if when.tzinfo is None or not EARLIEST <= when <= latest:
        raise Refused(
            f"{name} {when.isoformat()[:40]} is out of range: give a time between "
            f"1970-01-01 and {latest:%Y-%m-%d} (ten years from now)"
        )


class AlreadyWaiting(Exception):
    def __init__(self, job_name: str, job_id: int | None) -> None:
        super().__init__(f"{job_name} already has a run waiting (job {job_id})")
        self.job_name, self.job_id = job_name, job_id


@dataclass(frozen=True)
class ScheduleState:
    """One schedule as the code declares it, with the database's view when there is
    one. ``in_code`` is False for a schedule only the database still knows."""

    id: str
    description: str
    # In effect now: the table's values where the database is known, else the code's.
    cron: str
    zone: str
    queue: str
    misfire_policy: str
    in_code: bool
    has_body: bool
    next_run_at: datetime | None
    task_name: str = ""
    timeout_seconds: float | None = None
    # An operator changed the declared values (``declared`` has the code's).
    overridden: bool = False
    declared: dict[str, Any] | None = None
    # "code" for a declared schedule, "sql" for one an operator created.
    created_in: str = "code"
    enabled: bool | None = None
    removed_at: datetime | None = None
    last_tick_at: datetime | None = None
    last_tick_outcome: str | None = None
    last_run_status: str | None = None
    last_run_started_at: datetime | None = None
    last_run_finished_at: datetime | None = None
    # Environment variables its job needs that are unset (it is not configured).
    missing_settings: list[str] = field(default_factory=list)
    # Why no worker can follow it (it is set aside), or None.
    broken: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in asdict(self).items()
        }


def database_rows(engine: Engine) -> dict[str, dict[str, Any]]:
    """``schedule_overview`` by schedule id."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(SQL["overview"]).mappings().all()
    return {row["id"]: dict(row) for row in rows}


def states(
    app: AgntApp,
    now: datetime,
    rows: dict[str, dict[str, Any]] | None,
    settings: Settings,
) -> list[ScheduleState]:
    """Every declared schedule in declaration order, then those only the database
    knows (created in SQL, or dropped from the code). Each with the values in
    effect (the table's; the code's when the database is not known), its next run
    from ``now`` in its zone, and what its job waits for from ``settings``."""
    rows = rows or {}
    result = []
    for schedule in app.schedules.values():
        row = rows.get(schedule.id)
        effective = _effective(row, now) if row else schedule
        result.append(
            ScheduleState(
                id=schedule.id,
                description=schedule.description,
                cron=row["cron"] if row else schedule.cron,
                zone=row["zone"] if row else schedule.zone,
                queue=row["queue"] if row else schedule.queue,
                misfire_policy=row["misfire_policy"] if row else str(schedule.misfire),
                in_code=True,
                has_body=schedule.id in app.tasks,
                next_run_at=_next_run(effective, now),
                task_name=schedule.id,
                timeout_seconds=_seconds(row["timeout"] if row else schedule.timeout),
                overridden=bool(row and row["overridden"]),
                declared=_declaration(schedule),
                missing_settings=missing_settings(schedule.id, settings),
                broken=broken.problem(row, now) if row else None,
                **_database_part(row or {}),
            )
        )
    for id_, row in sorted(rows.items()):
        if id_ in app.schedules:
            continue
        in_sql = not row["declared"]
        result.append(
            ScheduleState(
                id=id_,
                description=row["description"],
                cron=row["cron"],
                zone=row["zone"],
                queue=row["queue"],
                misfire_policy=row["misfire_policy"],
                in_code=False,
                has_body=in_sql and row["task_name"] in app.tasks,
                next_run_at=_next_run(_effective(row, now), now) if in_sql else None,
                task_name=row["task_name"],
                timeout_seconds=_seconds(row["timeout"]),
                created_in="sql" if in_sql else "code",
                missing_settings=(
                    missing_settings(row["task_name"], settings) if in_sql else []
                ),
                broken=(
                    broken.problem(row, now) if row["removed_at"] is None else None
                ),
                **_database_part(row),
            )
        )
    return result


def _effective(row: dict[str, Any], now: datetime) -> Schedule | None:
    try:
        return broken.follow(row, now)
    except broken.Broken:
        return None


def _next_run(schedule: Schedule | None, now: datetime) -> datetime | None:
    if schedule is None:
        return None
    try:
        return schedule.next_after(now)
    except ValueError:  # a cron with no date to fire on
        return None


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _declaration(schedule: Schedule) -> dict[str, Any]:
    return {
        "cron": schedule.cron,
        "zone": schedule.zone,
        "misfire_policy": str(schedule.misfire),
        "timeout_seconds": schedule.timeout.total_seconds(),
    }


def _database_part(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "enabled",
        "removed_at",
        "last_tick_at",
        "last_tick_outcome",
        "last_run_status",
        "last_run_started_at",
        "last_run_finished_at",
    )
    return {key: row.get(key) for key in keys}


@dataclass(frozen=True)
class Problem:
    kind: str  # no_body, not_deployed, changed, dropped, stale_worker, broken
    schedule_id: str | None
    message: str


def check(app: AgntApp, engine: Engine, settings: Settings) -> list[Problem]:
    """Where the deployed code and the database disagree. Empty: all is well."""
    problems = [
        Problem(
            "no_body",
            id_,
            f"{id_} is declared in periodic/ but no @job body is registered: "
            "it never runs",
        )
        for id_ in deploy.missing_bodies(app)
    ]
    rows = database_rows(engine)
    now = datetime.now(UTC)
    for id_, row in sorted(rows.items()):
        reason = broken.problem(row, now) if row["removed_at"] is None else None
        if reason is not None:
            problems.append(
                Problem(
                    "broken",
                    id_,
                    f"{id_} is broken, set aside (it alone does not tick): {reason}",
                )
            )
    for schedule in app.schedules.values():
        declared_row = rows.get(schedule.id)
        if declared_row is None:
            problems.append(
                Problem(
                    "not_deployed",
                    schedule.id,
                    f"{schedule.id} is declared here but no worker with this code "
                    "has started yet",
                )
            )
            continue
        # What the last deploy declared; an operator's override is not a
        # disagreement (``overrides`` lists those).
        database = {
            "cron": declared_row["declared_cron"],
            "zone": declared_row["declared_zone"],
            "queue": declared_row["queue"],
            "misfire": declared_row["declared_misfire_policy"],
            "timeout": _seconds_text(declared_row["declared_timeout"]),
        }
        for name, code_value in schedule.signature().items():
            if database[name] != code_value:
                problems.append(
                    Problem(
                        "changed",
                        schedule.id,
                        f"{schedule.id}: {name} is {code_value!r} here but "
                        f"{database[name]!r} in the database (last worker start)",
                    )
                )
    for id_, row in sorted(rows.items()):
        if id_ not in app.schedules and row["removed_at"] is None:
            problems.append(
                Problem(
                    "dropped",
                    id_,
                    f"{id_} is active in the database (first seen "
                    f"{_day(row['first_seen'])}) but this code does not declare it",
                )
            )
    problems.extend(_stale_workers(app, engine, settings))
    return problems


def _seconds_text(value: timedelta | None) -> str | None:
    return None if value is None else str(int(value.total_seconds()))


def _day(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d}"


@dataclass(frozen=True)
class Override:
    """A value an operator set that differs from what the code declares."""

    schedule_id: str
    field: str
    value: Any
    declared: Any
    changed_by: str | None
    changed_at: datetime | None

    @property
    def message(self) -> str:
        who = ""
        if self.changed_by:
            who = f" (set by {self.changed_by} at {self.changed_at:%Y-%m-%d %H:%M %Z})"
        return (
            f"{self.schedule_id}: {self.field} is {self.value!r}, the code declares "
            f"{self.declared!r}{who}; 'agnt-jobs schedules reset "
            f"{self.schedule_id}' returns to it"
        )


def overrides(app: AgntApp, engine: Engine) -> list[Override]:
    """Every value in effect that differs from the code's declaration, with who set
    it last: a deploy never undoes them, so they are shown."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(SQL["overridden"]).mappings().all()
    result = []
    for row in rows:
        schedule = app.schedules.get(row["id"])
        if schedule is None:
            continue
        declared = _declaration(schedule)
        effective = {
            "cron": row["cron"],
            "zone": row["zone"],
            "misfire_policy": row["misfire_policy"],
            "timeout_seconds": _seconds(row["timeout"]),
        }
        for name, value in effective.items():
            if value != declared[name]:
                result.append(
                    Override(
                        row["id"],
                        name,
                        value,
                        declared[name],
                        row["changed_by"],
                        row["changed_at"],
                    )
                )
    return result


def _stale_workers(app: AgntApp, engine: Engine, settings: Settings) -> list[Problem]:
    ours = deploy.deployed(app)
    with engine.connect() as connection:
        workers = (
            connection.exec_driver_sql(
                SQL["live_workers"],
                {"stalled_seconds": settings.stalled_worker_seconds},
            )
            .mappings()
            .all()
        )
    problems = []
    for worker in workers:
        theirs = worker["deployed"]
        differing = sorted(
            id_ for id_ in set(ours) | set(theirs) if ours.get(id_) != theirs.get(id_)
        )
        if differing:
            problems.append(
                Problem(
                    "stale_worker",
                    None,
                    f"worker {worker['worker_id']} ({worker['hostname']} pid "
                    f"{worker['pid']}) deployed different schedules: "
                    + ", ".join(differing),
                )
            )
    return problems


def declared(app: AgntApp, id_: str) -> None:
    if id_ not in app.schedules:
        raise UnknownId(
            f"unknown schedule {id_!r}: 'agnt-jobs schedules list' shows them all"
        )


@dataclass(frozen=True)
class Actor:
    """Who changes a schedule, for its audit row: ``source`` is cli or admin."""

    by: str
    source: str


def acting(connection: sa.Connection, actor: Actor) -> None:
    """Name who acts for the rest of ``connection``'s transaction: the trigger
    writes it in ``schedule_changes``."""
    connection.exec_driver_sql(
        SQL["acting"], {"changed_by": actor.by, "source": actor.source}
    )


# What the schedules table's checks raise (check_violation, restrict_violation),
# and a value Postgres cannot read (an interval, a boolean).
_REFUSALS = (psycopg.errors.IntegrityError, psycopg.errors.DataError)


def _refused(error: sqlalchemy.exc.DBAPIError) -> Refused:
    """The database's one-line reason for refusing a change."""
    reason = getattr(error.orig, "diag", None)
    text = getattr(reason, "message_primary", None) or str(error.orig)
    return Refused(text.strip().splitlines()[0])


def _schedule_row(connection: sa.Connection, id_: str) -> dict[str, Any]:
    """The live row of a schedule: one the code dropped is not acted on."""
    row = (
        connection.exec_driver_sql(SQL["schedule_row"], {"id": id_}).mappings().first()
    )
    if row is None or row["removed_at"] is not None:
        raise UnknownId(
            f"unknown schedule {id_!r}: 'agnt-jobs schedules list' shows them all"
        )
    return dict(row)


def _ensure_row(app: AgntApp, connection: sa.Connection, id_: str) -> None:
    """A schedule the code declares but no worker has declared in the table yet
    is declared now, as a deploy would (audited as one)."""
    schedule = app.schedules.get(id_)
    if schedule is None:
        return
    connection.exec_driver_sql(SQL["acting"], {"changed_by": "", "source": "deploy"})
    connection.exec_driver_sql(
        SQL["declare_one"],
        {
            "id": id_,
            "cron": schedule.cron,
            "zone": schedule.zone,
            "queue": schedule.queue,
            "policy": str(schedule.misfire),
            "timeout": schedule.timeout,
            "description": schedule.description,
            "has_body": id_ in app.tasks,
            "next_run_at": _next_run(schedule, datetime.now(schedule.tz)),
        },
    )
    connection.exec_driver_sql(SQL["acting"], {"changed_by": "", "source": ""})


@dataclass(frozen=True)
class Change:
    """New values for a schedule; None leaves a value as it is."""

    cron: str | None = None
    zone: str | None = None
    misfire_policy: str | None = None
    timeout: str | None = None  # anything Postgres reads as an interval
    enabled: bool | None = None

    def values(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def set_schedule(
    app: AgntApp,
    engine: Engine,
    id_: str,
    change: Change,
    actor: Actor,
    now: datetime,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Change a schedule (Postgres checks the values, audits the change and tells
    every worker); the row as it is after, with ``next_runs``: its next five runs
    from ``now``. With ``dry_run`` the change is made, read back and rolled back:
    the same checks, nothing changed."""
    values = change.values()
    if not values:
        raise Refused("nothing to change: give --cron, --zone, --misfire or --timeout")
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            if id_ in app.schedules:
                _ensure_row(app, connection, id_)
            _schedule_row(connection, id_)
            acting(connection, actor)
            connection.exec_driver_sql(
                SQL["set_schedule"],
                {"id": id_, **{name: values.get(name) for name in asdict(change)}},
            )
            row = _schedule_row(connection, id_)
            row["next_runs"] = next_runs(row, now)
            row["next_run_at"] = row["next_runs"][0] if row["next_runs"] else None
            if not dry_run:
                connection.exec_driver_sql(
                    SQL["set_next_runs"],
                    {"ids": [id_], "next_run_at": [row["next_run_at"]]},
                )
        except sqlalchemy.exc.DBAPIError as error:
            transaction.rollback()
            if isinstance(error.orig, _REFUSALS):
                raise _refused(error) from None
            raise
        except Exception:
            transaction.rollback()
            raise
        if dry_run:
            transaction.rollback()
        else:
            transaction.commit()
    return row


def next_runs(row: dict[str, Any], now: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` runs of a schedule row after ``now``, in its zone.
    Refused when this Python cannot evaluate it, or it never fires."""
    try:
        schedule = broken.follow(row, now)
    except broken.Broken as error:
        raise Refused(str(error)) from None
    runs, after = [], now
    try:
        for _ in range(count):
            after = schedule.next_after(after)
            runs.append(after)
    except ValueError:
        if not runs:
            raise Refused(
                f"schedule {row['id']}: cron {row['cron']!r} never fires"
            ) from None
    return runs


def reset(
    app: AgntApp, engine: Engine, id_: str, actor: Actor, now: datetime
) -> dict[str, Any]:
    """Return a declared schedule to what the code declares (the pause switch is
    left as it is); the row after, with its next runs."""
    with engine.begin() as connection:
        row = _schedule_row(connection, id_)
        if not row["declared"]:
            raise Refused(
                f"{id_} was created in SQL: it has no declaration to return to "
                "(delete it, or change it with 'agnt-jobs schedules set')"
            )
        acting(connection, actor)
        connection.exec_driver_sql(SQL["reset_schedule"], {"id": id_})
        row = _schedule_row(connection, id_)
        row["next_runs"] = next_runs(row, now)
        row["next_run_at"] = row["next_runs"][0]
        connection.exec_driver_sql(
            SQL["set_next_runs"], {"ids": [id_], "next_run_at": [row["next_run_at"]]}
        )
    return row


def set_enabled(
    app: AgntApp,
    engine: Engine,
    id_: str,
    enabled: bool,
    actor: Actor | None = None,
) -> None:
    """Pause (``enabled=False``) or resume a schedule. Every worker sees it at the
    schedule's next tick; a paused tick is recorded as skipped."""
    with engine.begin() as connection:
        _ensure_row(app, connection, id_)
        _schedule_row(connection, id_)
        if actor is not None:
            acting(connection, actor)
        connection.exec_driver_sql(SQL["set_enabled"], {"id": id_, "enabled": enabled})


def job_task(app: AgntApp, name: str) -> Task[..., Any, ...]:
    """The task of a job that can run here, or UnknownId saying why not."""
    task = app.tasks.get(name)
    if task is not None:
        return task
    if name in app.schedules:
        raise UnknownId(f"{name} is declared but has no job body in this deployment")
    raise UnknownId(f"unknown job {name!r}: 'agnt-jobs schedules list' shows them all")


# Defers on a connection the caller gives it, never through a pool of its own: the
# App's connector may be closed (the CLI), or open on another event loop (a web
# backend that mounts the admin view), and opening and closing the App around each
# call would race between the admin's request threads.
_ON_CONNECTION = JobManager(TracedSyncConnector())


def run_now(app: AgntApp, engine: Engine, settings: Settings, name: str) -> int:
    """Defer a run of the job ``name`` now (its tick is now); the run's job id. Raises
    AlreadyWaiting when one already waits (the queueing lock), NotConfigured when
    a setting it needs is unset (it would only fail).

    The job is inserted in a transaction of ``engine``, so this is safe from any
    thread, whatever state the App's own connector is in."""
    task = job_task(app, name)
    require_configured(name, settings)
    job = task.configure().job
    try:
        with engine.begin() as connection:
            driver = connection.connection.driver_connection
            return JobDeferrer(_ON_CONNECTION, job, connection=driver).defer()
    except exceptions.AlreadyEnqueued:
        with engine.connect() as connection:
            job_id = connection.exec_driver_sql(
                SQL["waiting_job"], {"queueing_lock": task.queueing_lock}
            ).scalar()
        raise AlreadyWaiting(name, job_id) from None


def run_at(
    app: AgntApp,
    engine: Engine,
    settings: Settings,
    name: str,
    when: datetime,
    actor: Actor,
) -> int:
    """Defer a run of job ``name`` for ``when`` (an aware instant in the future);
    its tick is ``when``. It waits as ``todo`` until then, shown as scheduled in
    ``job_run_audit``; without the queueing lock, so the job's scheduled ticks are
    not held back meanwhile (the job lock still keeps runs from overlapping)."""
    task = job_task(app, name)
    require_configured(name, settings)
    check_instant("at", when)
    if when <= datetime.now(when.tzinfo):
        raise Refused(f"{when.isoformat()} is in the past: give a future time")
    job = task.configure(
        schedule_at=when, task_kwargs={"timestamp": int(when.timestamp())}
    ).job
    job = attr.evolve(job, queueing_lock=None)
    with engine.begin() as connection:
        driver = connection.connection.driver_connection
        job_id = JobDeferrer(_ON_CONNECTION, job, connection=driver).defer()
        connection.exec_driver_sql(
            SQL["record_run_action"],
            {
                "job_id": job_id,
                "action": "run_at",
                "by": actor.by,
                "source": actor.source,
            },
        )
    return job_id


def cancel(engine: Engine, job_id: int, actor: Actor) -> str:
    """Cancel a run: ``cancelled`` (it was waiting) or ``cancelling`` (it stops at
    its next checkpoint and ends cancelled). UnknownId, or Refused for a run that
    already ended."""
    status: str = _run_request(engine, SQL["cancel_run"], {"job_id": job_id}, actor)
    return status


def retry(engine: Engine, job_id: int, actor: Actor) -> int:
    """Run again a failed, timed-out or cancelled run; the new job's id."""
    new_job_id: int = _run_request(engine, SQL["retry_run"], {"job_id": job_id}, actor)
    return new_job_id


def waits_until(engine: Engine, job_id: int) -> datetime | None:
    """When a waiting run is set to start; None if it starts when a worker is
    free (or no longer waits)."""
    with engine.connect() as connection:
        return connection.exec_driver_sql(
            SQL["waits_until"], {"job_id": job_id}
        ).scalar()


def retry_all(
    engine: Engine, job: str, since: datetime, until: datetime, actor: Actor
) -> list[tuple[int, int]]:
    """Retry every failed, timed-out or cancelled run of ``job`` that ended in
    [since, until) and has no retry under way; (run, retry) job ids."""
    check_instant("since", since)
    check_instant("until", until)
    params = {"job": job, "since": since, "until": until}
    rows = _run_request(engine, SQL["retry_runs"], params, actor, all_rows=True)
    return [(row[0], row[1]) for row in rows]


def _run_request(
    engine: Engine,
    query: str,
    params: dict[str, Any],
    actor: Actor,
    all_rows: bool = False,
) -> Any:
    """One call of a run function (``agnt_cancel_run``, ``agnt_retry_run``...): an
    unknown id or job is UnknownId, a request the run's state forbids is Refused."""
    params = {**params, "by": actor.by, "source": actor.source}
    try:
        with engine.begin() as connection:
            result = connection.exec_driver_sql(query, params)
            return result.all() if all_rows else result.scalar()
    except sqlalchemy.exc.DBAPIError as error:
        if isinstance(error.orig, psycopg.errors.NoDataFound):
            raise UnknownId(_refused(error).args[0]) from None
        if isinstance(error.orig, psycopg.errors.ObjectNotInPrerequisiteState):
            raise _refused(error) from None
        raise


def job_state(engine: Engine, job_id: int) -> dict[str, Any] | None:
    with engine.connect() as connection:
        row = (
            connection.exec_driver_sql(SQL["job_state"], {"job_id": job_id})
            .mappings()
            .first()
        )
    return dict(row) if row else None


def wait_for(
    engine: Engine, job_id: int, timeout: float | None, poll: float = 0.2
) -> dict[str, Any]:
    """Poll a job until it ends (or ``timeout`` seconds pass); its last state."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        state = job_state(engine, job_id) or {"status": "deleted"}
        if state["status"] in (*FINAL_STATUSES, "deleted"):
            return state
        if deadline is not None and time.monotonic() > deadline:
            return state
        time.sleep(poll)
