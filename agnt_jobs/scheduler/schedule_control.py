"""What operators do with schedules: see them with their state, check the deployed
code against the database, pause, resume, change a schedule or return it to its
declaration. The CLI (and the admin view) are thin layers over these functions;
what they do with runs (run a job now or at a time, cancel, retry, wait) is
``run_control``'s.

Changes go through the ``schedules`` table, whose triggers (docs/schema.sql) check
them, audit them in ``schedule_changes`` and tell the workers; these functions only
say who acts (``operators.acting``), so that a change made here and one made with
plain SQL are the same change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.engine import Engine

from agnt_jobs.errors import Conflict, Invalid, NotFound
from agnt_jobs.scheduler import broken, deploy
from agnt_jobs.scheduler.bodies import missing_settings
from agnt_jobs.scheduler.declaration import Schedule
from agnt_jobs.scheduler.deploy import SQL
from agnt_jobs.scheduler.operators import Actor, acting, refused_by_database
from agnt_jobs.scheduler.worker import AgntApp
from agnt_jobs.settings import Settings


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


def _schedule_row(connection: sa.Connection, id_: str) -> dict[str, Any]:
    """The live row of a schedule: one the code dropped is not acted on."""
    row = (
        connection.exec_driver_sql(SQL["schedule_row"], {"id": id_}).mappings().first()
    )
    if row is None or row["removed_at"] is not None:
        raise NotFound(
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
        raise Invalid("nothing to change: give --cron, --zone, --misfire or --timeout")
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
                raise _located(refused_by_database(error), change) from None
            raise
        except Invalid as refused:
            transaction.rollback()
            raise _located(str(refused), change) from None
        except Exception:
            transaction.rollback()
            raise
        if dry_run:
            transaction.rollback()
        else:
            transaction.commit()
    return row


# What the schedules table's checks raise (check_violation, restrict_violation),
# and a value Postgres cannot read (an interval, a boolean).
_REFUSALS = (psycopg.errors.IntegrityError, psycopg.errors.DataError)

# The values a change names, as its fields and the table's columns both call them.
_CHANGEABLE = ("cron", "zone", "misfire_policy", "timeout")


def _located(message: str, change: Change) -> Invalid:
    """A refused change at the value it names: Postgres's line (and Broken's)
    starts with the column, ``schedules.cron ...``; any other is the change's."""
    column = message.removeprefix("schedules.").split(" ", 1)[0]
    field = column if column in _CHANGEABLE else "body"
    return Invalid(message, field, getattr(change, field, None))


def next_runs(row: dict[str, Any], now: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` runs of a schedule row after ``now``, in its zone.
    Invalid when this Python cannot evaluate it, or it never fires."""
    try:
        schedule = broken.follow(row, now)
    except broken.Broken as error:
        raise Invalid(str(error)) from None
    runs, after = [], now
    try:
        for _ in range(count):
            after = schedule.next_after(after)
            runs.append(after)
    except ValueError:
        if not runs:
            raise Invalid(
                f"schedule {row['id']}: cron {row['cron']!r} never fires"
            ) from None
    return runs


def reset(
    app: AgntApp, engine: Engine, id_: str, actor: Actor, now: datetime
) -> dict[str, Any]:
    """Return a declared schedule to what the code declares (the pause switch is
    left as it is); the row after, with its next runs. Conflict for a schedule
    created in SQL, or one whose declaration no worker here can follow."""
    with engine.begin() as connection:
        row = _schedule_row(connection, id_)
        if not row["declared"]:
            raise Conflict(
                f"{id_} was created in SQL: it has no declaration to return to "
                "(delete it, or change it with 'agnt-jobs schedules set')"
            )
        acting(connection, actor)
        connection.exec_driver_sql(SQL["reset_schedule"], {"id": id_})
        row = _schedule_row(connection, id_)
        try:
            row["next_runs"] = next_runs(row, now)
        except Invalid as error:
            raise Conflict(str(error)) from None
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
