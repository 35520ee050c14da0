"""platform_health_monitor against a real Postgres and a local alerts webhook: each
check on data made for it (missed schedules through the schedule scheduled_app's own
deferrer), results stored, alerts only on a change of state and exactly once even
with two monitors at once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from agnt_jobs.jobs import health
from agnt_jobs.scheduler import control
from agnt_jobs.scheduler.bodies import BODIES, RunContext
from agnt_jobs.scheduler.declaration import WITA, Misfire, Schedule
from agnt_jobs.scheduler.deferrer import ScheduleDeferrer
from agnt_jobs.scheduler.worker import AgntApp
from agnt_jobs.settings import Settings
from tests.support.health_data import add_due_messages, add_job
from tests.support.jobs import context, run_concurrently
from tests.support.lifecycle_data import count, scalar
from tests.support.ops_peers import FakeAlerts
from tests.support.schedules import finish_waiting, registry_app


@pytest.fixture
def alerts_server() -> Iterator[FakeAlerts]:
    server = FakeAlerts().start()
    yield server
    server.stop()


def _ctx(engine: Engine, env: Settings, alerts: FakeAlerts, **kw: Any) -> RunContext:
    return context(engine, env, alerts_webhook_url=alerts.url, **kw)


def _states(engine: Engine) -> dict[str, str]:
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT check_name, status FROM health_check_state"))
        return dict(rows.all())


def test_a_quiet_platform_is_healthy_and_every_result_is_stored(
    engine: Engine, env: Settings, alerts_server: FakeAlerts
) -> None:
    checks = health.default_checks()
    result = health.run_checks(_ctx(engine, env, alerts_server), checks)
    assert result["checks"] == len(checks) == 11 and result["failing"] == 0
    assert result["alerts_queued"] == 0
    assert _states(engine) == dict.fromkeys(checks, "ok")
    with engine.connect() as c:
        assert count(c, "health_check_results", "status = 'ok'") == len(checks)
        latency = scalar(
            c,
            "SELECT value FROM health_check_results "
            "WHERE check_name = 'database_latency'",
        )
    assert latency > 0
    assert alerts_server.received == []


def test_old_results_are_pruned(
    engine: Engine, env: Settings, alerts_server: FakeAlerts
) -> None:
    now = datetime.now(UTC)
    with engine.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO health_check_results (check_name, status, checked_at) "
                "VALUES ('queue_depth', 'ok', :old), ('queue_depth', 'ok', :kept)"
            ),
            {"old": now - timedelta(days=31), "kept": now - timedelta(days=29)},
        )
    checks = {"webhook_backlog": health.webhook_backlog}
    result = health.run_checks(_ctx(engine, env, alerts_server, now=now), checks)
    assert result["results_pruned"] == 1
    with engine.connect() as c:
        assert count(c, "health_check_results") == 2  # the kept one and this run's


def test_alerts_only_when_a_check_changes_state(
    engine: Engine, env: Settings, alerts_server: FakeAlerts
) -> None:
    checks = {"send_queue_backlog": health.send_queue_backlog}
    with engine.begin() as c:
        add_due_messages(c, 3)

    def run() -> dict[str, Any]:
        ctx = _ctx(engine, env, alerts_server, health_send_backlog_max=2)
        return health.run_checks(ctx, checks)

    assert run()["alerts_queued"] == 1
    assert run()["alerts_queued"] == 0  # still failing: no news
    with engine.begin() as c:
        c.execute(sa.text("UPDATE send_queue SET status = 'SENT'"))
    assert run()["alerts_queued"] == 1
    assert run()["alerts_queued"] == 0

    texts = [a["text"] for a in alerts_server.alerts.values()]
    assert texts == [
        "[FAILING] send_queue_backlog: 3 (limit 2)",
        "[RECOVERED] send_queue_backlog: 0 (limit 2)",
    ]
    with engine.connect() as c:
        assert count(c, "health_check_results") == 4
        state = c.execute(sa.text("SELECT status, value FROM health_check_state")).one()
    assert tuple(state) == ("ok", 0)


def test_two_monitors_at_once_alert_once(
    engine: Engine, env: Settings, alerts_server: FakeAlerts
) -> None:
    checks = {
        "send_queue_backlog": health.send_queue_backlog,
        "dead_letter_growth": health.dead_letter_growth,
    }
    with engine.begin() as c:
        add_due_messages(c, 5)

    def monitor() -> dict[str, Any]:
        ctx = _ctx(engine, env, alerts_server, health_send_backlog_max=1)
        return health.run_checks(ctx, checks)

    results = run_concurrently(monitor)
    assert sum(r["alerts_queued"] for r in results) == 1
    assert sum(r["alerts_sent"] for r in results) == 1
    assert len(alerts_server.received) == 1
    assert _states(engine) == {
        "send_queue_backlog": "failing",
        "dead_letter_growth": "ok",
    }


def test_an_alerts_outage_delays_the_alert_without_repeating_it(
    engine: Engine, env: Settings, alerts_server: FakeAlerts
) -> None:
    checks = {"send_queue_backlog": health.send_queue_backlog}
    with engine.begin() as c:
        add_due_messages(c, 3)
    ctx = _ctx(engine, env, alerts_server, health_send_backlog_max=0)
    alerts_server.fail_next(1)
    first = health.run_checks(ctx, checks)
    assert (first["alerts_queued"], first["alerts_sent"]) == (1, 0)
    second = health.run_checks(
        _ctx(engine, env, alerts_server, health_send_backlog_max=0), checks
    )
    assert (second["alerts_queued"], second["alerts_sent"]) == (0, 1)
    assert len(alerts_server.alerts) == 1


def test_queue_depth_oldest_job_and_failed_jobs(
    engine: Engine, env: Settings, alerts_server: FakeAlerts
) -> None:
    now = datetime.now(UTC)
    with engine.begin() as c:
        add_job(c, "booking_reminders", waiting_since=now - timedelta(minutes=20))
        add_job(c, "booking_reminders")
        add_job(c, "spend_digest", scheduled_at=now + timedelta(hours=1))  # not due
        add_job(c, "monthly_invoice", failed=True)
        add_job(c, "monthly_invoice", failed=True)
    checks = {
        name: health.default_checks()[name]
        for name in ("queue_depth", "oldest_waiting_job", "failed_jobs")
    }
    ctx = _ctx(engine, env, alerts_server, now=now, health_queue_depth_max=1)
    result = health.run_checks(ctx, checks)
    assert result["failing_checks"] == [
        "failed_jobs",
        "oldest_waiting_job",
        "queue_depth",
    ]
    with engine.connect() as c:
        rows = {
            row.check_name: (row.value, row.details)
            for row in c.execute(
                sa.text("SELECT check_name, value, details FROM health_check_results")
            )
        }
    assert rows["queue_depth"][0] == 2
    assert rows["queue_depth"][1]["by_queue"] == {"default": 2}
    assert 1199 <= rows["oldest_waiting_job"][0] <= 1201
    assert rows["failed_jobs"][0] == 2
    assert rows["failed_jobs"][1]["by_task"] == {"monthly_invoice": 2}


def test_a_check_that_cannot_run_is_failing(
    engine: Engine, env: Settings, alerts_server: FakeAlerts
) -> None:
    def broken(connection: Connection, ctx: RunContext) -> health.Observation:
        connection.execute(sa.text("SELECT * FROM no_such_table"))
        raise AssertionError("unreachable")

    def stuck(connection: Connection, ctx: RunContext) -> health.Observation:
        connection.execute(sa.text("SELECT pg_sleep(30)"))
        raise AssertionError("unreachable")

    checks = {
        "broken": broken,
        "stuck": stuck,
        "webhook_backlog": health.webhook_backlog,
    }
    ctx = _ctx(engine, env, alerts_server, health_check_timeout_seconds=0.2)
    result = health.run_checks(ctx, checks)
    assert result["failing_checks"] == ["broken", "stuck"]
    texts = sorted(alert["text"] for alert in alerts_server.alerts.values())
    assert texts == [
        '[FAILING] broken: UndefinedTable: relation "no_such_table" does not exist',
        "[FAILING] stuck: QueryCanceled: canceling statement due to statement timeout",
    ]


# missed_schedules reads the schedule scheduled_app's own record (schedule_late_ticks):
# the situations are made by the deferrer and SQL functions on schedules
# of the test's own.
HOURLY = Schedule("hourly_sweep", "0 * * * *", "Sweep.")
DAILY = Schedule("daily_close", "0 5 * * *", "Close the day.", Misfire.CATCH_UP)
SCHEDULE_CHECK = {"missed_schedules": health.missed_schedules}


@pytest.fixture
async def scheduled_app(db_url: str) -> AsyncIterator[AgntApp]:
    async with registry_app(db_url, [HOURLY, DAILY]) as app:
        yield app


def _deferrer(app: AgntApp, env: Settings, **overrides: Any) -> ScheduleDeferrer:
    """A worker's deferrer starting afresh, with the clock in the test's hands."""
    return ScheduleDeferrer(app, env.model_copy(update=overrides), worker_id=None)


def _days_ahead_wita(days: int, hour: int) -> datetime:
    """A WITA hour some days ahead: ticks decided for it never look late against
    the database clock, so only what a test makes shows in schedule_late_ticks."""
    day = datetime.now(ZoneInfo(WITA)) + timedelta(days=days)
    return day.replace(hour=hour, minute=0, second=0, microsecond=0)


def _schedule_result(engine: Engine) -> tuple[float, dict[str, Any]]:
    with engine.connect() as c:
        row = c.execute(
            sa.text(
                "SELECT value, details FROM health_check_results "
                "WHERE check_name = 'missed_schedules' ORDER BY id DESC LIMIT 1"
            )
        ).one()
    return row.value, row.details


async def test_overdue_schedules_fail_until_a_worker_decides_their_ticks(
    scheduled_app: AgntApp, engine: Engine, env: Settings, alerts_server: FakeAlerts
) -> None:
    # The last deferrer pass ran two days ago at 12:30 (nothing due within its
    # tolerance), then every worker stopped: both next runs are long past.
    stopped = datetime.now(ZoneInfo(WITA)) - timedelta(days=2)
    stopped = stopped.replace(hour=12, minute=30, second=0, microsecond=0)
    await _deferrer(scheduled_app, env).defer_due(stopped.timestamp())
    with engine.connect() as c:
        assert count(c, "schedule_ticks") == 0

    result = BODIES["platform_health_monitor"](_ctx(engine, env, alerts_server))
    assert result["failing_checks"] == ["missed_schedules"]
    value, details = _schedule_result(engine)
    assert value == 2
    assert {k: datetime.fromisoformat(v) for k, v in details["overdue"].items()} == {
        HOURLY.id: stopped + timedelta(minutes=30),
        DAILY.id: stopped + timedelta(days=1, hours=-7, minutes=-30),
    }
    assert details["missed"] == {}

    # A paused schedule is not overdue: nobody should decide its ticks.
    control.set_enabled(scheduled_app, engine, DAILY.id, False)
    health.run_checks(_ctx(engine, env, alerts_server), SCHEDULE_CHECK)
    value, details = _schedule_result(engine)
    assert (value, list(details["overdue"])) == (1, [HOURLY.id])

    # A worker is back: its first pass moves every next run past now.
    await _deferrer(scheduled_app, env).defer_due(time.time())
    assert (
        health.run_checks(_ctx(engine, env, alerts_server), SCHEDULE_CHECK)["failing"]
        == 0
    )
    health.run_checks(_ctx(engine, env, alerts_server), SCHEDULE_CHECK)
    assert _schedule_result(engine)[1]["overdue"] == {}

    texts = [a["text"] for a in alerts_server.alerts.values()]
    assert texts == [
        "[FAILING] missed_schedules: 2 (limit 0); overdue ['daily_close', "
        "'hourly_sweep']",
        "[RECOVERED] missed_schedules: 0 (limit 0)",
    ]


async def test_ticks_recorded_missed_fail_within_the_window(
    scheduled_app: AgntApp, engine: Engine, env: Settings, alerts_server: FakeAlerts
) -> None:
    nine = _days_ahead_wita(2, 9)
    await _deferrer(scheduled_app, env).defer_due(nine.timestamp() + 0.5)
    await finish_waiting(scheduled_app)
    # Every worker down from 09:00 to 12:05: 10:00 and 11:00 are lost (skip).
    await _deferrer(scheduled_app, env).defer_due(
        (nine + timedelta(hours=3, minutes=5)).timestamp()
    )

    def run(now: datetime) -> dict[str, Any]:
        return health.run_checks(
            _ctx(engine, env, alerts_server, now=now), SCHEDULE_CHECK
        )

    now = datetime.now(UTC)
    assert run(now)["failing"] == 1
    assert run(now + timedelta(minutes=15))["alerts_queued"] == 0  # no news
    value, details = _schedule_result(engine)
    assert value == 1
    missed = details["missed"][HOURLY.id]
    assert list(details["missed"]) == [HOURLY.id] and missed["ranges"] == 1
    assert datetime.fromisoformat(missed["since"]) == nine + timedelta(hours=1)
    assert datetime.fromisoformat(missed["until"]) == nine + timedelta(hours=2)
    assert details["overdue"] == details["late"] == {}

    # The window has passed since the misses were recorded: healthy again.
    later = now + timedelta(seconds=env.health_missed_ticks_window_seconds + 60)
    assert run(later)["failing"] == 0
    assert run(later)["alerts_queued"] == 0
    texts = [a["text"] for a in alerts_server.alerts.values()]
    assert texts == [
        "[FAILING] missed_schedules: 1 (limit 0); missed ['hourly_sweep']",
        "[RECOVERED] missed_schedules: 0 (limit 0)",
    ]


async def test_paused_queued_and_late_ticks_are_reported_not_failing(
    scheduled_app: AgntApp, engine: Engine, env: Settings, alerts_server: FakeAlerts
) -> None:
    # daily_close's latest tick deferred by a worker at least 30 minutes late,
    # and started now.
    late_tick = DAILY.latest_at(datetime.now(UTC) - timedelta(minutes=30))
    daily = scheduled_app.periodic_registry.periodic_tasks[(DAILY.id, DAILY.id)]
    assert (
        await _deferrer(scheduled_app, env)._defer_tick(daily, late_tick) == "deferred"
    )
    await finish_waiting(scheduled_app)
    # Then paused: the ticks it would have caught up and its next are skipped.
    control.set_enabled(scheduled_app, engine, DAILY.id, False)
    five = _days_ahead_wita(2, 5)
    await _deferrer(scheduled_app, env).defer_due(five.timestamp() + 0.5)
    # hourly_sweep's 05:00 run has not started by 06:00: the 06:00 tick is skipped.
    await _deferrer(scheduled_app, env).defer_due(five.timestamp() + 3600.5)

    result = health.run_checks(_ctx(engine, env, alerts_server), SCHEDULE_CHECK)
    assert result["failing"] == 0 and result["alerts_queued"] == 0
    value, details = _schedule_result(engine)
    assert value == 0
    assert details["overdue"] == details["missed"] == {}
    assert details["paused"] == {DAILY.id: 2}  # the caught-up range, and 05:00
    assert details["queued"] == {HOURLY.id: 1}
    assert list(details["late"]) == [DAILY.id]
    assert details["late"][DAILY.id]["ticks"] == 1
    assert details["late"][DAILY.id]["worst_start_delay_seconds"] >= 1800
    with engine.connect() as c:
        reasons = c.execute(
            sa.text(
                "SELECT schedule_id, reason, count(*) FROM schedule_ticks "
                "WHERE outcome = 'skipped' GROUP BY 1, 2 ORDER BY 1, 2"
            )
        ).all()
    assert [tuple(r) for r in reasons] == [
        (DAILY.id, "paused", 2),
        (HOURLY.id, "queued", 1),
    ]


async def test_an_enabled_schedule_waiting_for_a_setting_fails_until_it_is_set(
    db_url: str, engine: Engine, env: Settings
) -> None:
    """A job not configured is skipped, not failed: this check is what makes
    production alert on it. A paused one does not count."""
    waiting = [
        Schedule("deliver_reminders", "*/5 * * * *", "Send due reminders."),
        Schedule("monthly_invoice", "0 9 1 * *", "Invoice venues."),
        Schedule("dlq_cleanup", "0 3 * * *", "Needs nothing."),
    ]
    bare = env.model_copy(update={"channel_gateway_url": None, "stripe_api_key": None})
    async with registry_app(db_url, waiting) as app:
        with engine.connect() as connection:
            seen = health.unconfigured_schedules(connection, context(engine, bare))
        assert (seen.value, seen.ok) == (2, False)
        assert seen.details == {
            "waiting_for": {
                "deliver_reminders": ["AGNT_CHANNEL_GATEWAY_URL"],
                "monthly_invoice": ["AGNT_STRIPE_API_KEY"],
            }
        }
        control.set_enabled(app, engine, "monthly_invoice", False)
    with engine.connect() as connection:
        seen = health.unconfigured_schedules(connection, context(engine, bare))
    assert seen.value == 1
    configured = bare.model_copy(update={"channel_gateway_url": "http://127.0.0.1:9"})
    with engine.connect() as connection:
        seen = health.unconfigured_schedules(connection, context(engine, configured))
    assert (seen.value, seen.ok) == (0, True)
