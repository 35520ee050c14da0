"""platform_health_monitor against a real Postgres and a local alerts webhook: each
check on data made for it, results stored, alerts only on a change of state and
exactly once even with two monitors at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from agnt_jobs import missed_ticks
from agnt_jobs.jobs import health
from agnt_jobs.jobs.registry import BODIES, RunContext
from agnt_jobs.missed_ticks import ExpectedSchedule
from agnt_jobs.settings import Settings
from tests.support.health_data import add_defer, add_due_messages, add_job
from tests.support.jobs import context, run_concurrently
from tests.support.lifecycle_data import count, scalar
from tests.support.ops_peers import FakeAlerts

WITA = "Asia/Makassar"


def no_schedules(connection: Connection, now: datetime) -> list[ExpectedSchedule]:
    return []


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
    checks = health.default_checks(no_schedules)
    result = health.run_checks(_ctx(engine, env, alerts_server), checks)
    assert result["checks"] == 8 and result["failing"] == 0
    assert result["alerts_queued"] == 0
    assert _states(engine) == dict.fromkeys(checks, "ok")
    with engine.connect() as c:
        assert count(c, "health_check_results", "status = 'ok'") == 8
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
        name: health.default_checks(no_schedules)[name]
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


# Tuesday 2026-11-24 05:00 WITA.
NOW = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)


def _wita(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


def test_missed_schedules_against_procrastinates_last_defers(
    engine: Engine, env: Settings, alerts_server: FakeAlerts
) -> None:
    expected = [
        ExpectedSchedule("purge_deleted_users", "0 4 * * *", WITA),
        ExpectedSchedule("b2b_session_cleanup", "0 3 * * *", WITA),
        ExpectedSchedule("retry_failed_sends", "* * * * *", WITA),
        ExpectedSchedule("rotate_delta_log", "30 4 * * 0", WITA),
        ExpectedSchedule("rebuild_entity_graph", "0 * * * *", WITA),
        ExpectedSchedule("faq_extraction", "59 23 * * 0", WITA),
        ExpectedSchedule("never_ran", "0 2 * * *", WITA),
        ExpectedSchedule(
            "deployed_then_silent", "0 2 * * *", WITA, since=NOW - timedelta(days=2)
        ),
        ExpectedSchedule(
            "just_deployed", "0 4 * * *", WITA, since=NOW - timedelta(minutes=30)
        ),
    ]
    with engine.begin() as c:
        add_defer(c, "purge_deleted_users", _wita(24, 4))  # today's tick
        add_defer(c, "b2b_session_cleanup", _wita(23, 3))  # yesterday's: missed today's
        add_defer(c, "retry_failed_sends", NOW - timedelta(minutes=3))
        add_defer(c, "rotate_delta_log", _wita(22, 4, 30))  # Sunday's
        # 05:00's tick is inside the grace period; 04:00's was deferred.
        add_defer(c, "rebuild_entity_graph", _wita(24, 4))
        add_defer(
            c, "faq_extraction", _wita(15, 23, 59)
        )  # a week late: Sunday's missed

    def source(connection: Connection, now: datetime) -> list[ExpectedSchedule]:
        assert now == NOW
        return expected

    checks = {"missed_schedules": health.missed_schedules(source)}
    ctx = _ctx(engine, env, alerts_server, now=NOW, health_schedule_grace_seconds=600)
    assert health.run_checks(ctx, checks)["failing"] == 1
    with engine.connect() as c:
        value, details = c.execute(
            sa.text("SELECT value, details FROM health_check_results")
        ).one()
    assert value == 3
    assert sorted(details["late"]) == [
        "b2b_session_cleanup",
        "deployed_then_silent",
        "faq_extraction",
    ]
    assert details["late"]["b2b_session_cleanup"] == {
        "expected": _wita(24, 3).isoformat(),
        "last_deferred": _wita(23, 3).isoformat(),
    }
    assert details["never_deferred"] == [
        "deployed_then_silent",
        "just_deployed",
        "never_ran",
    ]
    (alert,) = alerts_server.alerts.values()
    assert alert["text"] == (
        "[FAILING] missed_schedules: 3 (limit 0); late "
        "['b2b_session_cleanup', 'deployed_then_silent', 'faq_extraction']"
    )
    assert alert["data"]["details"]["late"] == details["late"]


def test_the_job_body_reads_the_configured_schedule_source(
    engine: Engine,
    env: Settings,
    alerts_server: FakeAlerts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[datetime] = []

    def source(connection: Connection, now: datetime) -> list[ExpectedSchedule]:
        asked.append(now)
        return [ExpectedSchedule("dlq_cleanup", "15 2 * * *", WITA, since=NOW)]

    monkeypatch.setattr(missed_ticks, "schedule_source", source)
    result = BODIES["platform_health_monitor"](
        _ctx(engine, env, alerts_server, now=NOW + timedelta(days=1))
    )
    assert asked and result["failing_checks"] == ["missed_schedules"]


def test_the_default_source_is_procrastinates_periodic_registry(engine: Engine) -> None:
    from agnt_jobs.app import app

    with engine.connect() as c:
        found = missed_ticks.procrastinate_registry_source(c, NOW)
    assert len(found) == len(app.periodic_registry.periodic_tasks)
