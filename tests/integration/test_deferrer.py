"""The deferrer against a real database, with the clock in the test's hands: each
tick decided once however many workers defer, misfire policies across a restart,
pause and resume, and the queueing lock. Real SQL, no worker processes (the
acceptance tests run those)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from procrastinate import PsycopgConnector
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler import deploy, schedule_control, tasks
from agnt_jobs.scheduler.declaration import Misfire, Schedule
from agnt_jobs.scheduler.deferrer import (
    BACKSTOP_SECONDS,
    PASS_STALE_SECONDS,
    ScheduleDeferrer,
)
from agnt_jobs.scheduler.deferrer import (
    WAKE_MARGIN_SECONDS as WAKE_MARGIN,
)
from agnt_jobs.scheduler.worker import AgntApp
from agnt_jobs.settings import Settings
from tests.support.schedules import declare_earlier, finish_waiting, registry_app

WITA = ZoneInfo("Asia/Makassar")
HOURLY = Schedule("hourly_sweep", "0 * * * *", "Sweep.", queue="sweeps")
DAILY = Schedule("daily_close", "0 5 * * *", "Close the day.", Misfire.CATCH_UP)
DeferrerFactory = Callable[[], ScheduleDeferrer]


def at(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2026, 3, day, hour, minute, tzinfo=WITA).timestamp()


def wita(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, WITA)


@pytest.fixture
async def app(db_url: str, env: Settings) -> AsyncIterator[AgntApp]:
    """An app of our own with two schedules with bodies and one without."""
    app = AgntApp(connector=PsycopgConnector(conninfo=db_url))
    for schedule in (HOURLY, DAILY):
        tasks.make_task(app, schedule.id, lambda ctx: {})
    deploy.register(app, [HOURLY, DAILY, Schedule("bodiless", "0 1 * * *", "")])
    async with app.open_async():
        await deploy.sync_table(app)
        yield app


@pytest.fixture
def deferrer(app: AgntApp, env: Settings) -> DeferrerFactory:
    """A new deferrer each call: a worker (re)starting with nothing in memory."""
    return lambda: ScheduleDeferrer(app=app, settings=env, worker_id=None)


def ticks(engine: Engine, schedule_id: str) -> list[tuple]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                sa.text(
                    "SELECT tick_at, outcome, reason, missed_since, job_id "
                    "FROM schedule_ticks WHERE schedule_id = :id ORDER BY tick_at"
                ),
                {"id": schedule_id},
            )
        ]


def jobs(engine: Engine, task: str) -> list[dict]:
    with engine.connect() as connection:
        return [
            dict(row)
            for row in connection.execute(
                sa.text(
                    "SELECT id, status::text, args, lock, queueing_lock, queue_name "
                    "FROM procrastinate_jobs WHERE task_name = :t ORDER BY id"
                ),
                {"t": task},
            ).mappings()
        ]


async def test_each_tick_is_deferred_once_by_many_workers(
    deferrer: DeferrerFactory, engine: Engine
) -> None:
    workers = [deferrer() for _ in range(3)]
    for worker in workers:
        await worker.defer_due(at(4, 10, 0) + 0.5)
    [job] = jobs(engine, HOURLY.id)
    assert job["args"] == {"timestamp": int(at(4, 10))}
    assert job["lock"] == job["queueing_lock"] == HOURLY.id
    assert job["queue_name"] == "sweeps"
    assert ticks(engine, HOURLY.id) == [
        (wita(at(4, 10)), "deferred", None, None, job["id"])
    ]
    assert jobs(engine, "bodiless") == []


async def test_skip_after_a_restart_runs_only_the_latest_tick(
    app: AgntApp, deferrer: DeferrerFactory, engine: Engine
) -> None:
    await deferrer().defer_due(at(4, 9, 0) + 0.5)
    await finish_waiting(app)
    # Down until 12:05: 10:00 and 11:00 are missed; 12:00 is 5 minutes late.
    await deferrer().defer_due(at(4, 12, 5))
    decisions = [(t[0], t[1], t[2], t[3]) for t in ticks(engine, HOURLY.id)]
    assert decisions == [
        (wita(at(4, 9)), "deferred", None, None),
        (wita(at(4, 11)), "skipped", "missed", wita(at(4, 10))),
        (wita(at(4, 12)), "deferred", None, None),
    ]


async def test_catch_up_after_a_restart_runs_each_missed_tick_once_in_order(
    app: AgntApp, deferrer: DeferrerFactory, engine: Engine
) -> None:
    await deferrer().defer_due(at(2, 5) + 0.5)
    await finish_waiting(app)
    # Down from the 2nd 05:00 to the 4th 04:30: the 3rd 05:00 is due (23.5h old).
    restarted = deferrer()
    assert await restarted.defer_due(at(4, 4, 30)) is False
    # At 05:00 on the 4th the caught-up run still waits: the new tick waits too
    # (at most one run waits), and goes as soon as the previous one started.
    assert await restarted.defer_due(at(4, 5) + 0.5) is True
    await finish_waiting(app)
    assert await deferrer().defer_due(at(4, 5) + 1.0) is False
    # A second restart repeats nothing.
    await deferrer().defer_due(at(4, 5) + 2.0)
    args = [job["args"]["timestamp"] for job in jobs(engine, DAILY.id)]
    assert args == [int(at(2, 5)), int(at(3, 5)), int(at(4, 5))]


async def test_catch_up_outside_the_grace_window_is_recorded_missed(
    app: AgntApp, deferrer: DeferrerFactory, engine: Engine
) -> None:
    await deferrer().defer_due(at(1, 5) + 0.5)
    await finish_waiting(app)
    await deferrer().defer_due(at(4, 6))
    assert [t[:4] for t in ticks(engine, DAILY.id)][1:] == [
        (wita(at(3, 5)), "skipped", "missed", wita(at(2, 5))),
        (wita(at(4, 5)), "deferred", None, None),
    ]


async def test_paused_ticks_are_skipped_by_every_worker_and_not_caught_up(
    app: AgntApp, deferrer: DeferrerFactory, engine: Engine
) -> None:
    await deferrer().defer_due(at(2, 5) + 0.5)
    await finish_waiting(app)
    schedule_control.set_enabled(app, engine, DAILY.id, False)
    for worker in (deferrer(), deferrer()):
        await worker.defer_due(at(3, 5) + 0.5)
    schedule_control.set_enabled(app, engine, DAILY.id, True)
    await deferrer().defer_due(at(3, 6))
    await deferrer().defer_due(at(4, 5) + 0.5)
    assert [t[:3] for t in ticks(engine, DAILY.id)] == [
        (wita(at(2, 5)), "deferred", None),
        (wita(at(3, 5)), "skipped", "paused"),
        (wita(at(4, 5)), "deferred", None),
    ]


async def test_a_tick_while_the_previous_run_waits_is_skipped(
    deferrer: DeferrerFactory, engine: Engine
) -> None:
    await deferrer().defer_due(at(4, 10) + 0.5)
    await deferrer().defer_due(at(4, 11) + 0.5)
    assert [t[1:3] for t in ticks(engine, HOURLY.id)] == [
        ("deferred", None),
        ("skipped", "queued"),
    ]
    assert len(jobs(engine, HOURLY.id)) == 1


async def test_next_runs_are_written_for_sql(
    deferrer: DeferrerFactory, engine: Engine
) -> None:
    await deferrer().defer_due(at(4, 10) + 0.5)
    with engine.connect() as connection:
        next_runs = dict(
            connection.execute(sa.text("SELECT id, next_run_at FROM schedules")).all()
        )
    assert next_runs[HOURLY.id] == wita(at(4, 11))
    assert next_runs[DAILY.id] == wita(at(5, 5))


async def test_sync_marks_dropped_schedules_and_restores_returning_ones(
    app: AgntApp, engine: Engine
) -> None:
    # An earlier deploy declared "legacy"; this code no longer does.
    with engine.begin() as connection:
        declare_earlier(connection, "legacy")
    assert await deploy.sync_table(app) == ["legacy"]
    assert await deploy.sync_table(app) == []
    with engine.connect() as connection:
        rows = {
            id_: (removed, has_body)
            for id_, removed, has_body in connection.execute(
                sa.text("SELECT id, removed_at IS NOT NULL, has_body FROM schedules")
            )
        }
    assert rows == {
        "legacy": (True, True),
        HOURLY.id: (False, True),
        DAILY.id: (False, True),
        "bodiless": (False, False),
    }


# --- the races the exactly-once promise rests on, played one step at a time ------
#
# Two deciders of one schedule: one has planned a tick from what it read, then
# another decides first. Each step is a call of the SQL function every worker
# decides through, on its own connection, so the interleaving is the test's.

DECIDE = sa.text(
    "SELECT outcome, reason FROM agnt_defer_schedule_tick('hourly_sweep', "
    "'hourly_sweep', '0 * * * *', 'Asia/Makassar', 'sweeps', 'hourly_sweep', "
    "'hourly_sweep', 0, :tick, :retry, NULL)"
)


def decide(
    engine: Engine, tick: float, retry_when_queued: bool = False
) -> tuple[str, str | None]:
    """The tick's outcome and reason, as the SQL function returns them."""
    with engine.begin() as connection:
        outcome, reason = connection.execute(
            DECIDE, {"tick": int(tick), "retry": retry_when_queued}
        ).one()
        return outcome, reason


@pytest.mark.usefixtures("app")
def test_a_tick_planned_before_a_newer_one_was_decided_is_not_deferred(
    engine: Engine,
) -> None:
    assert decide(engine, at(4, 11)) == ("deferred", None)
    # The slower decider planned 10:00 before 11:00 was decided: it must not run
    # now, after a newer tick (the last decided tick only moves forward).
    assert decide(engine, at(4, 10)) == ("already_decided", None)
    assert [t[1] for t in ticks(engine, HOURLY.id)] == ["deferred"]
    assert len(jobs(engine, HOURLY.id)) == 1


@pytest.mark.usefixtures("app")
def test_a_tick_another_decider_recorded_paused_or_skipped_is_not_deferred(
    engine: Engine,
) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE schedules SET enabled = false WHERE id = 'hourly_sweep'")
        )
    assert decide(engine, at(4, 10)) == ("skipped", "paused")
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE schedules SET enabled = true WHERE id = 'hourly_sweep'")
        )
    # A decider that read the schedule enabled before the pause comes late.
    assert decide(engine, at(4, 10)) == ("already_decided", None)

    assert decide(engine, at(4, 11)) == ("deferred", None)  # and left waiting
    # A catch-up schedule's tick waits for that run: held, recorded nowhere.
    assert decide(engine, at(4, 12), retry_when_queued=True) == ("held", "queued")
    assert decide(engine, at(4, 12)) == (
        "skipped",
        "queued",
    )  # the 11:00 run still waits
    assert decide(engine, at(4, 12)) == ("already_decided", None)
    assert [t[1:3] for t in ticks(engine, HOURLY.id)] == [
        ("skipped", "paused"),
        ("deferred", None),
        ("skipped", "queued"),
    ]
    assert len(jobs(engine, HOURLY.id)) == 1


def _wait_until_blocked(engine: Engine, application_name: str) -> None:
    """Until the session named ``application_name`` waits on a lock."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            waiting = connection.execute(
                sa.text(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": application_name},
            ).scalar()
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError(f"{application_name} never waited on a lock")


def _decide_in_thread(
    engine: Engine, tick: float
) -> tuple[threading.Thread, list[tuple[str, str | None]]]:
    """Decide ``tick`` on a session of its own, named 'late_decider', in a thread."""
    outcome: list[tuple[str, str | None]] = []

    def run() -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql("SET application_name = 'late_decider'")
            row = connection.execute(DECIDE, {"tick": int(tick), "retry": False}).one()
            outcome.append((row[0], row[1]))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@pytest.mark.usefixtures("app")
def test_a_decision_in_progress_holds_back_another_decider_of_the_schedule(
    engine: Engine,
) -> None:
    """While one worker's decision of 11:00 is not yet committed, another deciding
    10:00 waits for it (the per-schedule lock), then finds a newer tick decided.
    Without the lock it would see nothing decided and defer 10:00 after 11:00."""
    with engine.connect() as first, first.begin():
        assert tuple(
            first.execute(DECIDE, {"tick": int(at(4, 11)), "retry": False}).one()
        ) == ("deferred", None)
        thread, outcome = _decide_in_thread(engine, at(4, 10))
        _wait_until_blocked(engine, "late_decider")
        assert outcome == []
    thread.join(10)
    assert outcome == [("already_decided", None)]
    assert [t[1] for t in ticks(engine, HOURLY.id)] == ["deferred"]


@pytest.mark.usefixtures("app")
def test_a_pause_in_progress_holds_back_the_decision_then_is_obeyed(
    engine: Engine,
) -> None:
    """A pause not yet committed when a worker decides a tick: the decision waits
    for it (the schedule row is read FOR SHARE) and records the tick paused. Read
    without the lock, the old 'enabled' would defer a tick of a paused schedule."""
    with engine.connect() as operator, operator.begin():
        operator.execute(
            sa.text("UPDATE schedules SET enabled = false WHERE id = 'hourly_sweep'")
        )
        thread, outcome = _decide_in_thread(engine, at(4, 10))
        _wait_until_blocked(engine, "late_decider")
    thread.join(10)
    assert outcome == [("skipped", "paused")]
    assert jobs(engine, HOURLY.id) == []


@pytest.mark.usefixtures("app")
def test_a_missed_range_over_a_tick_decided_since_it_was_planned_is_refused(
    engine: Engine,
) -> None:
    """A worker planned 10:00 to 11:00 as missed from the last tick it read; another
    worker has since deferred 10:00. Recorded, the range would decide 10:00 twice."""
    assert decide(engine, at(4, 10)) == ("deferred", None)
    with engine.begin() as connection:
        recorded = connection.execute(
            sa.text(
                "SELECT agnt_record_missed_ticks('hourly_sweep', :first, :last, NULL)"
            ),
            {"first": int(at(4, 10)), "last": int(at(4, 11))},
        ).scalar_one()
    assert recorded is False
    assert [t[1] for t in ticks(engine, HOURLY.id)] == ["deferred"]


async def test_a_pass_planned_from_a_stale_last_tick_plans_again_from_what_is(
    app: AgntApp, deferrer: DeferrerFactory, engine: Engine
) -> None:
    """After an outage every waking worker passes. One read 09:00 as the last tick;
    before it recorded its missed range, another deferred 10:00. The stale pass
    records nothing and asks to come back; the next one covers each tick once."""
    slow, fast = deferrer(), deferrer()
    await slow.defer_due(at(4, 9) + 0.5)
    await finish_waiting(app)
    await fast.defer_due(at(4, 10) + 0.5)
    await finish_waiting(app)
    stale = await slow._decide(
        slow.followed[HOURLY.id], wita(at(4, 9)), None, wita(at(4, 12, 5)), False
    )
    assert stale is True
    assert len(ticks(engine, HOURLY.id)) == 2
    assert await slow.defer_due(at(4, 12, 5) + 0.5) is False
    assert [t[:4] for t in ticks(engine, HOURLY.id)] == [
        (wita(at(4, 9)), "deferred", None, None),
        (wita(at(4, 10)), "deferred", None, None),
        (wita(at(4, 11)), "skipped", "missed", wita(at(4, 11))),
        (wita(at(4, 12)), "deferred", None, None),
    ]


async def test_ticks_of_a_job_waiting_for_a_setting_are_skipped_not_configured(
    db_url: str, env: Settings, engine: Engine
) -> None:
    """Until AGNT_CHANNEL_GATEWAY_URL is set, each due tick of deliver_reminders
    (which needs it) is decided skipped, not_configured, and no job is deferred to
    fail; once it is set, the next tick runs."""
    reminders = Schedule("deliver_reminders", "*/5 * * * *", "Send due reminders.")
    async with registry_app(db_url, [reminders]) as app:
        bare = env.model_copy(update={"channel_gateway_url": None})
        deferrer = ScheduleDeferrer(app=app, settings=bare, worker_id=None)
        assert deferrer.not_configured() == {
            "deliver_reminders": ["AGNT_CHANNEL_GATEWAY_URL"]
        }
        await deferrer.defer_due(at(4, 10) + 0.5)
        await deferrer.defer_due(at(4, 10, 5) + 0.5)
        await deferrer.defer_due(at(4, 10, 5) + 0.7)  # the same tick again
        configured = env.model_copy(
            update={"channel_gateway_url": "http://127.0.0.1:9"}
        )
        deferrer = ScheduleDeferrer(app=app, settings=configured, worker_id=None)
        assert deferrer.not_configured() == {}
        await deferrer.defer_due(at(4, 10, 10) + 0.5)
    assert [t[:3] for t in ticks(engine, "deliver_reminders")] == [
        (wita(at(4, 10)), "skipped", "not_configured"),
        (wita(at(4, 10, 5)), "skipped", "not_configured"),
        (wita(at(4, 10, 10)), "deferred", None),
    ]
    assert len(jobs(engine, "deliver_reminders")) == 1


async def test_one_worker_passes_for_a_tick_the_others_sleep_to_the_next(
    deferrer: DeferrerFactory, engine: Engine
) -> None:
    first, second = deferrer(), deferrer()
    for worker in (first, second):
        await worker.defer_due(at(4, 9, 30))  # following, as after a start
        worker.next_wait(at(4, 9, 30), False)
    assert first.fingerprint == second.fingerprint
    tick = wita(at(4, 10))
    # The second worker claimed the 10:00 pass and has not finished it: the
    # first one, woken for the same tick, decides nothing and looks again no
    # later than the claim may stay unfinished.
    assert await second._claim(tick) == "claimed"
    wait = await first.pass_once(at(4, 10) + 0.05, tick)
    assert ticks(engine, HOURLY.id) == []
    assert wait == PASS_STALE_SECONDS
    # The second worker finished its pass: woken again, the first one is told
    # so and sleeps to the next tick without passing.
    await second.pass_once(at(4, 10) + 0.06, None)
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE schedule_passes SET finished_at = clock_timestamp()")
        )
    assert [t[1] for t in ticks(engine, HOURLY.id)] == ["deferred"]
    wait = await first.pass_once(at(4, 10) + 2.05, tick)
    assert wait == BACKSTOP_SECONDS  # the 11:00 tick is further
    assert first._toward is None


async def test_a_pass_claimed_and_left_unfinished_is_taken_over(
    deferrer: DeferrerFactory, engine: Engine
) -> None:
    dead, alive = deferrer(), deferrer()
    for worker in (dead, alive):
        await worker.defer_due(at(4, 9, 30))
    tick = wita(at(4, 10))
    assert await dead._claim(tick) == "claimed"  # and never passed
    await alive.pass_once(at(4, 10) + 0.05, tick)
    assert ticks(engine, HOURLY.id) == []
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE schedule_passes SET claimed_at = claimed_at "
                "- make_interval(secs => :stale)"
            ),
            {"stale": PASS_STALE_SECONDS + 1},
        )
    await alive.pass_once(at(4, 10) + PASS_STALE_SECONDS + 1, tick)
    assert [t[1] for t in ticks(engine, HOURLY.id)] == ["deferred"]


async def test_a_worker_woken_before_its_tick_neither_passes_nor_claims(
    deferrer: DeferrerFactory, engine: Engine
) -> None:
    early, other = deferrer(), deferrer()
    for worker in (early, other):
        await worker.defer_due(at(4, 9, 30))
    tick = wita(at(4, 10))
    wait = await early.pass_once(at(4, 10) - 0.01, tick)
    assert wait == pytest.approx(0.01 + WAKE_MARGIN, abs=1e-3)
    assert await other._claim(tick) == "claimed"
