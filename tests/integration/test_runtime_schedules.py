"""The schedules table is the schedule at runtime: Postgres refuses a bad schedule,
audits every change, keeps an operator's change across a deploy, runs schedules
created in SQL once per tick, and the deferrer follows a change at its next
decision. Real SQL on a real database; the worker processes are in
``tests/acceptance/test_runtime_schedules.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
import sqlalchemy as sa
from procrastinate import PsycopgConnector
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler import control, deploy, tasks
from agnt_jobs.scheduler.declaration import Misfire, Schedule
from agnt_jobs.scheduler.deferrer import ScheduleDeferrer
from agnt_jobs.scheduler.worker import AgntApp
from agnt_jobs.settings import Settings
from tests.support.schedules import finish_waiting

WITA = ZoneInfo("Asia/Makassar")
HOURLY = Schedule("hourly_sweep", "0 * * * *", "Sweep.", queue="sweeps")
DAILY = Schedule("daily_close", "0 5 * * *", "Close the day.", Misfire.CATCH_UP)
OPERATOR = control.Actor(by="ops@example", source="cli")


def at(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2026, 3, day, hour, minute, tzinfo=WITA).timestamp()


async def _app(db_url: str, schedules: list[Schedule]) -> AgntApp:
    app = AgntApp(connector=PsycopgConnector(conninfo=db_url))
    for schedule in schedules:
        tasks.make_task(app, schedule.id, lambda ctx: {})
    deploy.register(app, schedules)
    return app


@pytest.fixture
async def app(db_url: str, env: Settings) -> AsyncIterator[AgntApp]:
    app = await _app(db_url, [HOURLY, DAILY])
    async with app.open_async():
        await deploy.sync_table(app)
        yield app


@pytest.fixture
def deferrer(app: AgntApp, env: Settings) -> Callable[[], ScheduleDeferrer]:
    return lambda: ScheduleDeferrer(app=app, settings=env, worker_id=None)


def sql(engine: Engine, statement: str, **params: object) -> list[sa.Row]:
    with engine.begin() as connection:
        result = connection.execute(sa.text(statement), params)
        return list(result) if result.returns_rows else []


def refusal(engine: Engine, statement: str) -> str:
    """The one line Postgres answers a refused statement with."""
    with pytest.raises(sa.exc.DBAPIError) as raised:
        sql(engine, statement)
    assert isinstance(raised.value.orig, psycopg.errors.IntegrityError)
    return raised.value.orig.diag.message_primary or ""


def changes(engine: Engine, schedule_id: str) -> list[sa.Row]:
    return sql(
        engine,
        "SELECT changed_by, source, old, new FROM schedule_changes "
        "WHERE schedule_id = :id ORDER BY id",
        id=schedule_id,
    )


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("cron = '61 * * * *'", "schedules.cron '61 * * * *' is not a valid cron: "
         "the minute field '61' has '61': use 0 to 59"),
        ("cron = '*/5 * * *'", "schedules.cron '*/5 * * *' is not a valid cron: "
         "it has 4 fields"),
        ("cron = '0 25 * * *'", "the hour field '25' has '25': use 0 to 23"),
        ("cron = '0 3 * * funday'", "the day-of-week field 'funday' has 'funday': "
         "use 0 to 7 or sun to sat"),
        ("cron = '*/0 * * * *'", "has step 0: use 1 to 60"),
        ("cron = '5-3 * * * *'", "has the range 5-3 backwards"),
        ("cron = '@daily * * * *'", "a cron does not start with @"),
        ("cron = '@daily'", "macros are not read: write '0 0 * * *' for @daily"),
        ("cron = '0 9 L * *'", "the day-of-month field 'L' has 'l': use 1 to 31"),
        ("cron = '0 0 30 2 *'", "it never fires: no month in '2' has a day '30'"),
        ("zone = 'Mars/Olympus'", "schedules.zone 'Mars/Olympus' is not a time zone"),
        ("misfire_policy = 'sometimes'", "schedules.misfire_policy 'sometimes' is not "
         "a policy: use 'skip' or 'catch_up'"),
        ("timeout = interval '0'", "schedules.timeout '00:00:00' must be positive"),
        ("timeout = interval '-5 minutes'", "must be positive"),
        ("declared_cron = '* * * * *'", "schedules.declared*: the declaration is "
         "written by deploys"),
        ("task_name = 'daily_close'", "schedules.task_name of the declared schedule "
         "hourly_sweep is its job"),
    ],
)  # fmt: skip
def test_postgres_refuses_a_bad_schedule_and_changes_nothing(
    app: AgntApp, engine: Engine, assignment: str, expected: str
) -> None:
    before = sql(engine, "SELECT * FROM schedules ORDER BY id")
    message = refusal(
        engine, f"UPDATE schedules SET {assignment} WHERE id = 'hourly_sweep'"
    )
    assert expected in message
    assert sql(engine, "SELECT * FROM schedules ORDER BY id") == before
    assert changes(engine, HOURLY.id)[-1].source == "deploy"


def test_every_change_is_audited_with_who_and_what(
    app: AgntApp, engine: Engine
) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL application_name = 'psql'"))
        connection.execute(
            sa.text("UPDATE schedules SET cron = '7 3 * * *' WHERE id = 'hourly_sweep'")
        )
    control.set_schedule(
        app,
        engine,
        HOURLY.id,
        control.Change(zone="UTC", timeout="45 minutes"),
        OPERATOR,
        datetime.now(UTC),
    )
    control.set_enabled(app, engine, HOURLY.id, False, OPERATOR)
    declared, by_sql, by_cli, paused = changes(engine, HOURLY.id)
    assert declared.source == "deploy" and declared.old is None
    assert declared.new["cron"] == "0 * * * *"
    assert by_sql.source == "sql"
    assert by_sql.changed_by == "postgres (psql)"
    assert (by_sql.old, by_sql.new) == ({"cron": "0 * * * *"}, {"cron": "7 3 * * *"})
    assert (by_cli.source, by_cli.changed_by) == ("cli", "ops@example")
    assert by_cli.old == {"zone": "Asia/Makassar", "timeout": "00:30:00"}
    assert by_cli.new == {"zone": "UTC", "timeout": "00:45:00"}
    assert (paused.old, paused.new) == ({"enabled": True}, {"enabled": False})
    # Who last changed a value, for the override report.
    [*overrides] = control.overrides(app, engine)
    assert {(o.field, o.value, o.declared) for o in overrides} == {
        ("cron", "7 3 * * *", "0 * * * *"),
        ("zone", "UTC", "Asia/Makassar"),
        ("timeout_seconds", 2700.0, 1800.0),
    }
    assert {o.changed_by for o in overrides} == {"ops@example"}


async def test_a_deploy_keeps_an_operators_change_and_reset_returns_to_the_code(
    db_url: str, app: AgntApp, engine: Engine
) -> None:
    sql(engine, "UPDATE schedules SET cron = '7 3 * * *' WHERE id = 'hourly_sweep'")
    # The next deploy declares another cron and another zone for it.
    redeclared = Schedule(
        HOURLY.id, "30 * * * *", "Sweep.", queue="sweeps", zone="Asia/Jakarta"
    )
    new_code = await _app(db_url, [redeclared, DAILY])
    async with new_code.open_async():
        await deploy.sync_table(new_code)
    [row] = sql(engine, "SELECT * FROM schedules WHERE id = 'hourly_sweep'")
    # The operator's cron stands; the zone nobody overrode follows the code.
    assert (row.cron, row.declared_cron) == ("7 3 * * *", "30 * * * *")
    assert (row.zone, row.declared_zone) == ("Asia/Jakarta", "Asia/Jakarta")
    assert row.overridden
    redeployed = changes(engine, HOURLY.id)[-1]
    assert redeployed.source == "deploy"
    assert redeployed.new == {"zone": "Asia/Jakarta", "declared_cron": "30 * * * *",
                          "declared_zone": "Asia/Jakarta"}  # fmt: skip
    [override] = control.overrides(new_code, engine)
    assert override.message.startswith(
        "hourly_sweep: cron is '7 3 * * *', the code declares '30 * * * *' (set by "
    )

    row = control.reset(new_code, engine, HOURLY.id, OPERATOR, datetime.now(UTC))
    assert (row["cron"], row["zone"], row["overridden"]) == (
        "30 * * * *",
        "Asia/Jakarta",
        False,
    )
    assert row["next_run_at"] is not None
    assert control.overrides(new_code, engine) == []
    with pytest.raises(control.UnknownId):
        control.reset(new_code, engine, "nope", OPERATOR, datetime.now(UTC))


async def test_the_deferrer_follows_a_change_at_its_next_decision(
    app: AgntApp, engine: Engine, deferrer: Callable[[], ScheduleDeferrer]
) -> None:
    worker = deferrer()
    await worker.defer_due(at(4, 10) + 0.5)
    await finish_waiting(app)
    # Changed at 10:05 by the test's clock (the trigger stamps the database's).
    sql(
        engine,
        "UPDATE schedules SET cron = '30 * * * *', cron_changed_at = :at "
        "WHERE id = 'hourly_sweep'",
        at=datetime.fromtimestamp(at(4, 10, 5), UTC),
    )
    # The change nulls when it runs next until a worker has computed it.
    assert sql(engine, "SELECT next_run_at FROM schedules WHERE id = 'hourly_sweep'")[
        0
    ] == (None,)
    await worker.defer_due(at(4, 10, 30) + 0.5)
    await worker.defer_due(at(4, 11) + 0.5)
    ticks = sql(
        engine,
        "SELECT tick_at, outcome FROM schedule_ticks WHERE schedule_id = "
        "'hourly_sweep' ORDER BY tick_at",
    )
    assert [
        (t.tick_at.astimezone(WITA).strftime("%H:%M"), t.outcome) for t in ticks
    ] == [
        ("10:00", "deferred"),
        ("10:30", "deferred"),
    ]
    [next_run] = sql(
        engine, "SELECT next_run_at FROM schedules WHERE id = 'hourly_sweep'"
    )
    assert next_run[0] == datetime.fromtimestamp(at(4, 11, 30), UTC)


def test_a_decision_planned_on_replaced_values_is_refused(
    app: AgntApp, engine: Engine
) -> None:
    decide = (
        "SELECT outcome FROM agnt_defer_schedule_tick('hourly_sweep', 'hourly_sweep', "
        ":cron, 'Asia/Makassar', 'sweeps', 'hourly_sweep', 'hourly_sweep', 0, :tick, "
        "false, NULL)"
    )
    sql(engine, "UPDATE schedules SET cron = '30 * * * *' WHERE id = 'hourly_sweep'")
    # A worker that planned 10:00 on the old cron: nothing is deferred or recorded.
    assert sql(engine, decide, cron="0 * * * *", tick=int(at(4, 10))) == [("changed",)]
    assert sql(engine, "SELECT count(*) FROM schedule_ticks") == [(0,)]
    assert sql(engine, decide, cron="30 * * * *", tick=int(at(4, 10, 30))) == [
        ("deferred",)
    ]


async def test_a_schedule_created_in_sql_runs_its_job_once_per_tick(
    app: AgntApp,
    engine: Engine,
    env: Settings,
    deferrer: Callable[[], ScheduleDeferrer],
) -> None:
    sql(
        engine,
        "INSERT INTO schedules (id, task_name, cron, description) VALUES "
        "('daily_close_evening', 'daily_close', '0 18 * * *', 'A second close.')",
    )
    [row] = sql(engine, "SELECT * FROM schedules WHERE id = 'daily_close_evening'")
    assert (row.declared, row.zone, row.queue, row.misfire_policy) == (
        False,
        "Asia/Makassar",
        "default",
        "skip",
    )
    workers = [deferrer() for _ in range(3)]
    for epoch in (at(4, 5) + 0.5, at(4, 18) + 0.5):
        for worker in workers:
            await worker.defer_due(epoch)
        await finish_waiting(app)
    jobs = sql(
        engine,
        "SELECT t.schedule_id, j.task_name, j.lock, (j.args->>'timestamp')::bigint "
        "FROM schedule_ticks t JOIN procrastinate_jobs j ON j.id = t.job_id "
        "WHERE j.task_name = 'daily_close' ORDER BY t.tick_at",
    )
    assert [tuple(job) for job in jobs] == [
        ("daily_close", "daily_close", "daily_close", int(at(4, 5))),
        ("daily_close_evening", "daily_close", "daily_close", int(at(4, 18))),
    ]
    # It shows in the list beside the declared ones, with its job.
    [state] = [
        s
        for s in control.states(
            app, datetime.now(UTC), control.database_rows(engine), env
        )
        if s.id == "daily_close_evening"
    ]
    assert (state.created_in, state.task_name, state.has_body) == (
        "sql",
        "daily_close",
        True,
    )
    # One audit row for the insert; DELETE removes it with its ticks, and is audited.
    sql(engine, "DELETE FROM schedules WHERE id = 'daily_close_evening'")
    assert sql(
        engine, "SELECT count(*) FROM schedule_ticks WHERE schedule_id LIKE '%evening'"
    ) == [(0,)]
    assert [
        (c.old is None, c.new is None) for c in changes(engine, "daily_close_evening")
    ] == [
        (True, False),
        (False, True),
    ]


def test_sql_created_schedules_are_checked_and_declared_ones_not_deleted(
    app: AgntApp, engine: Engine
) -> None:
    assert "schedules.task_name 'nope' is not a job with a body" in refusal(
        engine,
        "INSERT INTO schedules (id, task_name, cron) VALUES ('x', 'nope', '0 1 * * *')",
    )
    assert "schedules.id 'Bad-Id': use lower-case letters" in refusal(
        engine,
        "INSERT INTO schedules (id, task_name, cron) VALUES "
        "('Bad-Id', 'daily_close', '0 1 * * *')",
    )
    message = refusal(engine, "DELETE FROM schedules WHERE id = 'daily_close'")
    assert message.startswith("schedule daily_close is declared in the code: pause it")
    assert sql(engine, "SELECT count(*) FROM schedules") == [(2,)]


def test_set_dry_run_shows_the_next_runs_and_changes_nothing(
    app: AgntApp, engine: Engine
) -> None:
    before = sql(engine, "SELECT * FROM schedules ORDER BY id")
    audit = sql(engine, "SELECT count(*) FROM schedule_changes")
    now = datetime(2026, 12, 24, 8, 0, tzinfo=WITA)
    row = control.set_schedule(
        app,
        engine,
        HOURLY.id,
        control.Change(cron="0 9 * * 1-5"),
        OPERATOR,
        now,
        dry_run=True,
    )
    assert [
        run.astimezone(WITA).strftime("%a %d %H:%M") for run in row["next_runs"]
    ] == [
        "Thu 24 09:00",
        "Fri 25 09:00",
        "Mon 28 09:00",
        "Tue 29 09:00",
        "Wed 30 09:00",
    ]
    assert sql(engine, "SELECT * FROM schedules ORDER BY id") == before
    assert sql(engine, "SELECT count(*) FROM schedule_changes") == audit
    with pytest.raises(control.Refused, match=r"^schedules.zone 'Mars/Olympus' is not"):
        control.set_schedule(
            app, engine, HOURLY.id, control.Change(zone="Mars/Olympus"), OPERATOR, now
        )
    with pytest.raises(control.Refused, match="interval"):
        control.set_schedule(
            app, engine, HOURLY.id, control.Change(timeout="soon"), OPERATOR, now
        )
    with pytest.raises(control.UnknownId):
        control.set_schedule(
            app, engine, "nope", control.Change(cron="* * * * *"), OPERATOR, now
        )
    assert sql(engine, "SELECT * FROM schedules ORDER BY id") == before
    assert timedelta(0) < before[0].timeout
