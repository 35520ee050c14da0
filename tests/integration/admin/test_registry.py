"""GET /admin/scheduler: every declared schedule with its next run, last run and
health, the schedules a deploy dropped, and the same on the page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from agnt_jobs.admin import AdminContext, auth, create_app
from agnt_jobs.scheduler import deploy
from agnt_jobs.scheduler.bodies import missing_settings
from agnt_jobs.scheduler.declaration import Schedule
from agnt_jobs.scheduler.worker import AgntApp
from agnt_jobs.settings import Settings
from periodic import DECLARED
from tests.support.admin_data import (
    BODILESS,
    EXPLODE,
    HALTED,
    HEADERS,
    NIGHTLY,
    SKIPPED,
    STALLED,
    TARDY,
    TIDY,
    TOKEN,
    defer_tick,
    drain,
    make_app,
    record_missed,
)

WITA = ZoneInfo("Asia/Makassar")


def _by_id(body: dict) -> dict[str, dict]:
    return {entry["id"]: entry for entry in body["schedules"]}


async def test_every_declared_schedule_with_next_runs_in_utc_and_wita(
    client: TestClient, app: AgntApp, engine: Engine, token_env: Settings
) -> None:
    async with app.open_async():
        await deploy.sync_table(app)  # a worker of this code started
    before = datetime.now(UTC)
    response = client.get("/admin/scheduler", headers=HEADERS)
    after = datetime.now(UTC)
    assert response.status_code == 200
    body = response.json()
    assert [entry["id"] for entry in body["schedules"]] == [s.id for s in DECLARED]
    assert body["removed"] == []
    assert body["timezone"] == "Asia/Makassar"
    assert sum(body["health_counts"].values()) == len(DECLARED)
    entries = _by_id(body)
    for schedule in DECLARED:
        entry = entries[schedule.id]
        assert (entry["trigger"], entry["zone"], entry["description"]) == (
            schedule.cron,
            schedule.zone,
            schedule.description,
        )
        assert entry["enabled"] is True and entry["deployed"] is True
        assert entry["next_run_at"].endswith("Z")
        next_run = datetime.fromisoformat(entry["next_run_at"])
        assert next_run in (schedule.next_after(before), schedule.next_after(after))
        wita = datetime.fromisoformat(entry["next_run_at_wita"])
        assert wita.utcoffset() == timedelta(hours=8) and wita == next_run
        missing = missing_settings(schedule.id, token_env)
        assert entry["missing_settings"] == missing
        if schedule.id not in app.tasks:
            expected = "no_body"
        else:
            expected = "not_configured" if missing else "on_time"
        assert entry["health"] == expected, schedule.id
    # Monday 04:00 WITA is Sunday 20:00 UTC: the zone is honoured, not shifted.
    deep = entries["deep_dreaming"]
    assert datetime.fromisoformat(deep["next_run_at_wita"]).strftime("%a %H:%M") == (
        "Mon 04:00"
    )
    assert datetime.fromisoformat(deep["next_run_at"]).strftime("%a %H:%M") == (
        "Sun 20:00"
    )
    kinds = {(p["kind"], p["schedule_id"]) for p in body["problems"]}
    assert kinds == {("no_body", id_) for id_ in deploy.missing_bodies(app)}


async def test_health_from_the_views(
    db_url: str, engine: Engine, client_for: Callable[[AgntApp], TestClient]
) -> None:
    # "Late" is the views' threshold, which the database may set: the admin view
    # follows it. Ten minutes, so that tidy's tick (at most 5 minutes old) is on time.
    with engine.begin() as connection:
        name = connection.execute(sa.text("SELECT current_database()")).scalar_one()
        connection.execute(
            sa.text(f"ALTER DATABASE \"{name}\" SET agnt.late_after = '10 minutes'")
        )
    engine.dispose()
    now = datetime.now(UTC)
    schedules = [TIDY, EXPLODE, NIGHTLY, HALTED, SKIPPED, STALLED, TARDY, BODILESS]
    app = make_app(db_url, schedules, failing=[EXPLODE.id])
    client = client_for(app)
    async with app.open_async():
        await deploy.sync_table(app)
    # A schedule this code declares that no worker has written yet.
    late_comer = make_app(
        db_url, [*schedules, Schedule("newcomer", "0 5 * * *", "New.")]
    )
    assert (
        client.post("/admin/scheduler/nightly/run", headers=HEADERS).status_code == 202
    )
    assert (
        client.post("/admin/scheduler/explode/run", headers=HEADERS).status_code == 202
    )
    assert client.post("/admin/scheduler/halted/pause", headers=HEADERS).json() == {
        "id": "halted",
        "enabled": False,
    }
    # tidy's latest tick, deferred on time; a tick of tardy's, half an hour late.
    assert defer_tick(engine, TIDY, TIDY.latest_at(now)) == "deferred"
    tardy_tick = TARDY.latest_at(now) - timedelta(minutes=30)
    assert defer_tick(engine, TARDY, tardy_tick) == "deferred"
    await drain(app)
    record_missed(engine, SKIPPED, now - timedelta(hours=3), SKIPPED.latest_at(now))
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE schedules SET next_run_at = now() - interval '1 hour' "
                "WHERE id = 'stalled'"
            )
        )

    body = client_for(late_comer).get("/admin/scheduler", headers=HEADERS).json()
    health = {id_: entry["health"] for id_, entry in _by_id(body).items()}
    assert health == {
        "tidy": "on_time",
        "explode": "failing",
        "nightly": "on_time",
        "halted": "paused",
        "skipped": "missed",
        "stalled": "missed",
        "tardy": "late",
        "bodiless": "no_body",
        "newcomer": "not_deployed",
    }
    entries = _by_id(body)
    assert entries["explode"]["last_run"]["status"] == "failed"
    assert (
        "RuntimeError: venue gateway said no" in entries["explode"]["last_run"]["error"]
    )
    last = entries["nightly"]["last_run"]
    assert last["status"] == "succeeded" and last["result"] == {"tidied": 3}
    assert last["duration_seconds"] >= 0
    assert datetime.fromisoformat(last["finished_at"]) >= datetime.fromisoformat(
        last["started_at"]
    )
    assert entries["skipped"]["last_tick"]["reason"] == "missed"
    assert entries["tidy"]["last_tick"]["outcome"] == "deferred"
    assert entries["halted"]["enabled"] is False
    assert entries["newcomer"]["deployed"] is False
    assert body["health_counts"]["missed"] == 2

    # The page shows the same, coloured by health.
    client.post("/admin/scheduler/ui/login", data={"token": TOKEN})
    page = client.get("/admin/scheduler/ui").text
    for id_, state in health.items():
        if id_ != "newcomer":
            assert f'data-schedule="{id_}" data-health="{state}"' in page
    assert "venue gateway said no" in page  # recent failures
    assert 'data-timeline="explode"' in page and 'class="bar failed"' in page
    assert 'class="bar succeeded"' in page


async def test_a_schedule_the_deploy_dropped_is_reported_not_lost(
    db_url: str, engine: Engine, client_for: Callable[[AgntApp], TestClient]
) -> None:
    old = make_app(db_url, [TIDY, NIGHTLY])
    new = make_app(db_url, [TIDY])
    assert (
        client_for(old)
        .post("/admin/scheduler/nightly/run", headers=HEADERS)
        .status_code
        == 202
    )
    await drain(old)  # a worker of the old code: syncs both, runs nightly

    # The new code is deployed to the admin, no worker of it has started yet.
    client = client_for(new)
    body = client.get("/admin/scheduler", headers=HEADERS).json()
    assert [entry["id"] for entry in body["schedules"]] == ["tidy"]
    [removed] = body["removed"]
    assert removed["id"] == "nightly" and removed["removed_at"] is None
    assert removed["trigger"] == NIGHTLY.cron
    assert removed["last_run"]["status"] == "succeeded"
    assert [(p["kind"], p["schedule_id"]) for p in body["problems"]] == [
        ("dropped", "nightly")
    ]

    # A worker of the new code starts: the schedule is marked removed, not deleted.
    async with new.open_async():
        await deploy.sync_table(new)
    body = client.get("/admin/scheduler", headers=HEADERS).json()
    [removed] = body["removed"]
    assert removed["id"] == "nightly" and removed["removed_at"] is not None
    assert body["problems"] == []
    client.post("/admin/scheduler/ui/login", data={"token": TOKEN})
    page = client.get("/admin/scheduler/ui").text
    assert 'data-removed="nightly"' in page
    # A dropped schedule cannot be paused any more: it is not declared.
    response = client.post("/admin/scheduler/nightly/pause", headers=HEADERS)
    assert response.status_code == 404
    assert "unknown schedule 'nightly'" in response.json()["detail"]
    assert auth.SESSION_COOKIE in client.cookies


async def test_a_job_waiting_for_a_setting_is_not_configured_and_not_run(
    db_url: str, engine: Engine, token_env: Settings
) -> None:
    """deliver_reminders needs the channel gateway: without its URL the registry
    says not_configured and names the variable, and a run by hand is refused
    (409, nothing deferred); with it, the same schedule is on time and runs."""
    reminders = Schedule("deliver_reminders", "*/5 * * * *", "Send due reminders.")
    app = make_app(db_url, [reminders])
    async with app.open_async():
        await deploy.sync_table(app)
    bare = token_env.model_copy(update={"channel_gateway_url": None})
    with TestClient(
        create_app(AdminContext(app=app, engine=engine, settings=bare))
    ) as client:
        [entry] = client.get("/admin/scheduler", headers=HEADERS).json()["schedules"]
        assert (entry["health"], entry["missing_settings"]) == (
            "not_configured",
            ["AGNT_CHANNEL_GATEWAY_URL"],
        )
        assert "AGNT_CHANNEL_GATEWAY_URL" in entry["health_reason"]
        refused = client.post("/admin/scheduler/deliver_reminders/run", headers=HEADERS)
        assert refused.status_code == 409
        assert refused.json()["detail"] == (
            "deliver_reminders is not configured: set AGNT_CHANNEL_GATEWAY_URL "
            "(see docs/configuration.md)"
        )
    with engine.connect() as connection:
        assert (
            connection.execute(
                sa.text("SELECT count(*) FROM procrastinate_jobs")
            ).scalar_one()
            == 0
        )

    configured = token_env.model_copy(
        update={"channel_gateway_url": "http://127.0.0.1:9"}
    )
    context = AdminContext(app=app, engine=engine, settings=configured)
    with TestClient(create_app(context)) as client:
        [entry] = client.get("/admin/scheduler", headers=HEADERS).json()["schedules"]
        assert (entry["health"], entry["missing_settings"]) == ("on_time", [])
        ran = client.post("/admin/scheduler/deliver_reminders/run", headers=HEADERS)
        assert ran.status_code == 202
