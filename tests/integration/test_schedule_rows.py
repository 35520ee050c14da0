"""No schedules row can stop a worker, ids do not move, a changed cron starts from
the change, and a retried run keeps its time: against a real database, with the
deferrer's clock in the test's hands.

The corrupted rows are written as the table's owner can, with the validation
triggers disabled: whatever a row holds, it alone stops ticking, and it is named
broken with the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
import sqlalchemy as sa
import sqlalchemy.exc
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
DeferrerFactory = Callable[[], ScheduleDeferrer]
ACTOR = control.Actor(by="test", source="cli")


def at(day: int, hour: int, minute: int = 0, second: float = 0) -> float:
    return datetime(2026, 3, day, hour, minute, tzinfo=WITA).timestamp() + second


def wita(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, WITA)


@pytest.fixture
async def app(db_url: str, env: Settings) -> AsyncIterator[AgntApp]:
    app = AgntApp(connector=PsycopgConnector(conninfo=db_url))
    for schedule in (HOURLY, DAILY):
        tasks.make_task(app, schedule.id, lambda ctx: {})
    deploy.register(app, [HOURLY, DAILY])
    async with app.open_async():
        await deploy.sync_table(app)
        yield app


@pytest.fixture
def deferrer(app: AgntApp, env: Settings) -> DeferrerFactory:
    return lambda: ScheduleDeferrer(app=app, settings=env, worker_id=None)


def sql(engine: Engine, statement: str, **params: object) -> list[sa.Row]:
    with engine.begin() as connection:
        result = connection.execute(sa.text(statement), params)
        return list(result) if result.returns_rows else []


def as_owner(engine: Engine, statement: str) -> None:
    """A write past every validation trigger, as the table's owner can make."""
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE schedules DISABLE TRIGGER USER"))
        connection.execute(sa.text(statement))
        connection.execute(sa.text("ALTER TABLE schedules ENABLE TRIGGER USER"))


def decided(engine: Engine, schedule_id: str) -> list[datetime]:
    rows = sql(
        engine,
        "SELECT tick_at FROM schedule_ticks WHERE schedule_id = :id ORDER BY tick_at",
        id=schedule_id,
    )
    return [row[0].astimezone(WITA) for row in rows]


def faults(engine: Engine) -> dict[str, str]:
    return dict(sql(engine, "SELECT schedule_id, reason FROM schedule_faults"))


# --- Postgres refuses what no worker can follow -----------------------------------


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("timeout = '3000000 years'", "outside 1 second to 7 days"),
        ("timeout = '0.5 seconds'", "outside 1 second to 7 days"),
        ("timeout = '8 days'", "outside 1 second to 7 days"),
        ("queue = repeat('q', 129)", "1 to 128 characters"),
        ("next_run_at = 'infinity'", "not a time a reader can use"),
        ("next_run_at = '10000-01-01'", "not a time a reader can use"),
        ("first_seen = '-infinity'", "not a time a reader can use"),
        ("id = 'monthly_invoice'", "cannot change"),
        ("id = 'hourly_sweep/pause?x='", "cannot change"),
    ],
)
async def test_postgres_refuses_a_value_no_worker_can_follow(
    app: AgntApp, engine: Engine, change: str, says: str
) -> None:
    before = sql(engine, "SELECT * FROM schedules WHERE id = 'hourly_sweep'")
    with pytest.raises(sqlalchemy.exc.IntegrityError) as refused:
        sql(engine, f"UPDATE schedules SET {change} WHERE id = 'hourly_sweep'")
    assert isinstance(refused.value.orig, psycopg.errors.CheckViolation)
    message = refused.value.orig.diag.message_primary or ""
    assert says in message and "\n" not in message
    assert sql(engine, "SELECT * FROM schedules WHERE id = 'hourly_sweep'") == before


async def test_the_timeout_bounds_are_inclusive(app: AgntApp, engine: Engine) -> None:
    for timeout in ("1 second", "7 days"):
        sql(
            engine,
            f"UPDATE schedules SET timeout = '{timeout}' WHERE id = 'daily_close'",
        )


# --- a row that cannot be followed is set aside -----------------------------------

# What the owner must drop first to write each value (a CHECK constraint).
CONSTRAINED = {
    "misfire_policy": "ck_schedules_policy",
    "timeout = '-": "ck_schedules_timeout",
}
CORRUPTIONS = {
    "timeout far off": "timeout = '3000000 years'",
    "timeout tiny": "timeout = '1 microsecond'",
    "declared timeout far off": "declared_timeout = '3000000 years'",
    "cron not a cron": "cron = 'every day at nine'",
    "cron never fires": "cron = '0 0 30 2 *'",
    "cron of six words": "cron = '0 9 * * * * *'",
    "zone unknown": "zone = 'Mars/Olympus_Mons'",
    "policy unknown": "misfire_policy = 'sometimes'",
    "timeout negative": "timeout = '-1 day'",
    "queue too long": "queue = repeat('q', 300)",
    "next run infinite": "next_run_at = 'infinity'",
    "first seen before year 1": "first_seen = '-infinity'",
    "job of another": "task_name = 'daily_close'",
    "id hostile": "id = 'hourly_sweep/pause?x='",
}


@pytest.mark.parametrize("change", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
async def test_a_row_no_worker_can_follow_stops_only_itself(
    app: AgntApp,
    deferrer: DeferrerFactory,
    engine: Engine,
    env: Settings,
    change: str,
) -> None:
    for prefix, constraint in CONSTRAINED.items():
        if change.startswith(prefix):
            sql(engine, f"ALTER TABLE schedules DROP CONSTRAINT {constraint}")
    as_owner(engine, f"UPDATE schedules SET {change} WHERE id = 'hourly_sweep'")
    [broken_id] = [
        row[0]
        for row in sql(engine, "SELECT id FROM schedules WHERE id <> 'daily_close'")
    ]
    workers = [deferrer(), deferrer()]
    for worker in workers:
        await worker.defer_due(at(4, 5, second=0.5))
    await finish_waiting(app)
    for worker in workers:
        await worker.defer_due(at(5, 5, second=0.5))

    assert decided(engine, DAILY.id) == [wita(at(4, 5)), wita(at(5, 5))]
    assert decided(engine, broken_id) == []
    assert broken_id in faults(engine)
    problems = control.check(app, engine, env)
    [line] = [p.message for p in problems if p.kind == "broken"]
    assert line.startswith(f"{broken_id} is broken") and "\n" not in line
    states = {
        s.id: s
        for s in control.states(
            app, datetime.now(UTC), control.database_rows(engine), env
        )
    }
    assert states[broken_id].broken
    assert states[DAILY.id].broken is None
    # A worker (re)starting declares the code's schedules past the broken row.
    await deploy.sync_table(app)


async def test_a_value_the_checks_miss_is_set_aside_when_its_tick_fails(
    app: AgntApp, deferrer: DeferrerFactory, engine: Engine, env: Settings
) -> None:
    # A bug in the row check (it finds nothing wrong with any row), and a queue
    # name Procrastinate cannot store: the failure comes at the tick's decision.
    sql(
        engine,
        "CREATE OR REPLACE FUNCTION agnt_schedule_problem(_s schedules) "
        "RETURNS text LANGUAGE sql AS 'SELECT NULL::text'",
    )
    as_owner(
        engine,
        "UPDATE schedules SET queue = repeat('q', 300) WHERE id = 'hourly_sweep'",
    )
    await deferrer().defer_due(at(4, 5, second=0.5))
    assert decided(engine, DAILY.id) == [wita(at(4, 5))]
    assert decided(engine, HOURLY.id) == []
    assert faults(engine)[HOURLY.id].startswith("its ticks cannot be decided: ")
    assert [
        p.schedule_id for p in control.check(app, engine, env) if p.kind == "broken"
    ] == [HOURLY.id]


async def test_a_mended_row_ticks_again_and_its_fault_is_lifted(
    app: AgntApp, deferrer: DeferrerFactory, engine: Engine, env: Settings
) -> None:
    as_owner(
        engine,
        "UPDATE schedules SET timeout = '3000000 years' WHERE id = 'hourly_sweep'",
    )
    worker = deferrer()
    await worker.defer_due(at(4, 5, second=0.5))
    assert "outside 1 second to 7 days" in faults(engine)[HOURLY.id]
    # The owner's row can still be paused, and mended with a plain UPDATE.
    sql(engine, "UPDATE schedules SET enabled = true WHERE id = 'hourly_sweep'")
    sql(engine, "UPDATE schedules SET timeout = '1 hour' WHERE id = 'hourly_sweep'")
    await worker.defer_due(at(4, 6, second=0.5))
    assert decided(engine, HOURLY.id) == [wita(at(4, 6))]
    assert faults(engine) == {}
    assert [p for p in control.check(app, engine, env) if p.kind == "broken"] == []


async def test_a_run_of_a_broken_schedule_reads_no_timeout(
    app: AgntApp, engine: Engine
) -> None:
    as_owner(
        engine,
        "UPDATE schedules SET timeout = '3000000 years' WHERE id = 'hourly_sweep'",
    )
    assert tasks.run_timeout(engine, None, HOURLY.id) is None
    assert tasks.run_timeout(engine, None, DAILY.id) == timedelta(minutes=30)


# --- a changed cron starts from the change ----------------------------------------


def change_cron(engine: Engine, id_: str, cron: str, when: float) -> None:
    """Change the cron at ``when`` of the test's clock (the trigger stamps the
    database's clock; the test's deferrer runs in March 2026)."""
    sql(
        engine,
        "UPDATE schedules SET cron = :cron, cron_changed_at = :at WHERE id = :id",
        cron=cron,
        at=wita(when),
        id=id_,
    )


async def test_a_changed_cron_runs_no_tick_from_before_the_change(
    app: AgntApp, deferrer: DeferrerFactory, engine: Engine
) -> None:
    # By the database's clock: the daily catch_up job last ticked an hour ago,
    # and is changed now to every two minutes.
    sql(
        engine,
        "INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, reason) "
        "VALUES ('daily_close', date_trunc('minute', now()) - interval '1 hour', "
        "'skipped', 'paused')",
    )
    [(before_change,)] = sql(engine, "SELECT clock_timestamp()")
    sql(engine, "UPDATE schedules SET cron = '*/2 * * * *' WHERE id = 'daily_close'")
    [(after_change,)] = sql(engine, "SELECT clock_timestamp()")
    await deferrer().defer_due(after_change.timestamp())
    assert [t for t in decided(engine, DAILY.id)[1:] if t < before_change] == []


async def test_a_changed_catch_up_cron_starts_at_its_first_tick_after_the_change(
    app: AgntApp, deferrer: DeferrerFactory, engine: Engine
) -> None:
    await deferrer().defer_due(at(4, 5, second=0.5))
    await finish_waiting(app)
    change_cron(engine, DAILY.id, "*/2 * * * *", at(4, 7, 49, 5))
    worker = deferrer()
    await worker.defer_due(at(4, 7, 49, 5.5))
    assert decided(engine, DAILY.id) == [wita(at(4, 5))]
    await worker.defer_due(at(4, 7, 50, 0.5))
    assert decided(engine, DAILY.id) == [wita(at(4, 5)), wita(at(4, 7, 50))]


async def test_ticks_missed_after_a_change_follow_the_policy(
    app: AgntApp, deferrer: DeferrerFactory, engine: Engine
) -> None:
    await deferrer().defer_due(at(4, 5, second=0.5))
    await finish_waiting(app)
    change_cron(engine, DAILY.id, "*/2 * * * *", at(4, 7, 49, 5))
    # No worker from the change until 07:54: catch_up runs 07:50, 07:52, 07:54.
    worker = deferrer()
    for _ in range(4):
        await worker.defer_due(at(4, 7, 54, 0.5))
        await finish_waiting(app)
    assert decided(engine, DAILY.id) == [
        wita(at(4, 5)),
        *(wita(at(4, 7, minute)) for minute in (50, 52, 54)),
    ]


async def test_a_changed_skip_cron_runs_no_tick_from_before_the_change(
    app: AgntApp, deferrer: DeferrerFactory, engine: Engine
) -> None:
    await deferrer().defer_due(at(4, 9, second=0.5))
    await finish_waiting(app)
    change_cron(engine, HOURLY.id, "*/10 * * * *", at(4, 9, 31))
    worker = deferrer()
    await worker.defer_due(at(4, 9, 31, 0.5))
    await worker.defer_due(at(4, 9, 40, 0.5))
    assert decided(engine, HOURLY.id) == [wita(at(4, 9)), wita(at(4, 9, 40))]


def test_the_change_of_a_cron_or_zone_is_stamped(app: AgntApp, engine: Engine) -> None:
    sql(engine, "UPDATE schedules SET timeout = '2 hours' WHERE id = 'daily_close'")
    assert sql(
        engine, "SELECT cron_changed_at FROM schedules WHERE id = 'daily_close'"
    ) == [(None,)]
    sql(engine, "UPDATE schedules SET zone = 'UTC' WHERE id = 'daily_close'")
    [(stamped, now)] = sql(
        engine,
        "SELECT cron_changed_at, clock_timestamp() FROM schedules "
        "WHERE id = 'daily_close'",
    )
    assert timedelta(0) <= now - stamped < timedelta(seconds=5)


# --- a retried run keeps its time -------------------------------------------------


async def test_retrying_a_run_set_for_later_keeps_its_time(
    app: AgntApp, engine: Engine, env: Settings
) -> None:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    job_id = control.run_at(app, engine, env, HOURLY.id, when, ACTOR)
    control.cancel(engine, job_id, ACTOR)
    retry_id = control.retry(engine, job_id, ACTOR)
    [(scheduled_at, args)] = sql(
        engine,
        "SELECT scheduled_at, args FROM procrastinate_jobs WHERE id = :id",
        id=retry_id,
    )
    assert scheduled_at == when
    assert args == {"timestamp": int(when.timestamp())}
    assert control.waits_until(engine, retry_id) == when


async def test_retrying_a_run_whose_time_passed_runs_it_now(
    app: AgntApp, engine: Engine, env: Settings
) -> None:
    job_id = control.run_now(app, engine, env, HOURLY.id)
    control.cancel(engine, job_id, ACTOR)
    retry_id = control.retry(engine, job_id, ACTOR)
    [(scheduled_at, args)] = sql(
        engine,
        "SELECT j.scheduled_at, j.args FROM procrastinate_jobs j WHERE id = :id",
        id=retry_id,
    )
    assert scheduled_at is None
    assert control.waits_until(engine, retry_id) is None
    [(original,)] = sql(
        engine, "SELECT args FROM procrastinate_jobs WHERE id = :id", id=job_id
    )
    assert args == original
