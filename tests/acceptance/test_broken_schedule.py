"""One schedule corrupted in every way we found, under three real workers: it alone
stops ticking, every other schedule keeps ticking exactly once, no worker stops,
and the broken one is reported on the pages, in /metrics, by the health monitor
and by ``agnt-jobs schedules check``.

The corruptions are written as the table's owner can: past the validation
triggers (``ALTER TABLE schedules DISABLE TRIGGER USER``) and with the CHECK
constraints dropped. Each is mended before the next, as an operator would.
"""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from procrastinate import PsycopgConnector
from sqlalchemy.engine import Engine

from agnt_jobs import settings
from agnt_jobs.admin import AdminContext, create_app
from agnt_jobs.jobs.health import platform_health_monitor
from agnt_jobs.scheduler import deploy, tasks
from agnt_jobs.scheduler.bodies import RunContext
from agnt_jobs.scheduler.worker import AgntApp
from tests.support import ticking
from tests.support.admin_data import HEADERS, TOKEN
from tests.support.ticking import BIN, ROOT, SCHEDULES, SECOND

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow

VICTIM = "test_catch_up"
WATCHED = ("test_tick", "test_skip")
UI = "/admin/scheduler/ui"
# Corruptions a starting worker's declaration of the schedules meets (the checks
# refuse to update such a row).
RESTARTED = ("timeout negative", "policy unknown", "job of another")
HOSTILE = f"{VICTIM}/pause?x="

CORRUPTIONS = {
    "timeout far off": "timeout = '3000000 years'",
    "timeout negative": "timeout = '-1 day'",
    "timeout tiny": "timeout = '1 microsecond'",
    "declared timeout far off": "declared_timeout = '3000000 years'",
    "cron not a cron": "cron = 'every day at nine'",
    "cron never fires": "cron = '0 0 30 2 *'",
    "zone unknown": "zone = 'Mars/Olympus_Mons'",
    "policy unknown": "misfire_policy = 'sometimes'",
    "queue too long": "queue = repeat('q', 300)",
    "next run infinite": "next_run_at = 'infinity'",
    "first seen before year 1": "first_seen = '-infinity'",
    "job of another": "task_name = 'test_tick'",
    "id hostile": f"id = '{HOSTILE}'",
}


def sql(engine: Engine, statement: str, **params: object) -> list[sa.Row]:
    with engine.begin() as connection:
        result = connection.execute(sa.text(statement), params)
        return list(result) if result.returns_rows else []


def as_owner(
    engine: Engine, statement: str, triggers: str = "USER", **params: object
) -> None:
    """A write past the validation triggers; ``triggers="ALL"`` (a superuser's)
    past the foreign keys' too, which keep an id with ticks from changing."""
    with engine.begin() as connection:
        connection.execute(sa.text(f"ALTER TABLE schedules DISABLE TRIGGER {triggers}"))
        connection.execute(sa.text(statement), params)
        connection.execute(sa.text(f"ALTER TABLE schedules ENABLE TRIGGER {triggers}"))


@pytest.fixture
def admin(
    db_url: str, engine: Engine, env: settings.Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """The admin view on an App that declares the ticking schedules, signed in."""
    monkeypatch.setenv("INTERNAL_API_TOKEN", TOKEN)
    settings.get_settings.cache_clear()
    app = AgntApp(connector=PsycopgConnector(conninfo=db_url))
    for schedule in SCHEDULES.values():
        tasks.make_task(app, schedule.id, lambda ctx: {})
    deploy.register(app, SCHEDULES.values())
    context = AdminContext(app=app, engine=engine, settings=settings.get_settings())
    with TestClient(create_app(context)) as client:
        client.post(f"{UI}/login", data={"token": TOKEN})
        yield client


def reported(
    db_url: str, engine: Engine, admin: TestClient, broken_id: str
) -> dict[str, str]:
    """Where the broken schedule shows, each place's own words."""
    seen = {}
    registry_page = admin.get(UI)
    assert registry_page.status_code == 200
    if f"{broken_id} is broken" in registry_page.text:
        seen["registry page"] = broken_id
    if broken_id == VICTIM:
        page = admin.get(f"{UI}/schedules/{VICTIM}")
        assert page.status_code == 200
        if 'id="health" title="broken' in page.text:
            seen["schedule page"] = VICTIM
    metrics = admin.get("/metrics", headers=HEADERS)
    assert metrics.status_code == 200
    label = broken_id.replace("\\", "\\\\").replace('"', '\\"')
    if f'agnt_schedule_broken{{schedule="{label}"}} 1.0' in metrics.text:
        seen["metrics"] = broken_id
    now = datetime.now(UTC)
    result = platform_health_monitor(
        RunContext(engine=engine, settings=settings.get_settings(), tick=now, now=now)
    )
    if "broken_schedules" in result["failing_checks"]:
        [(details,)] = sql(
            engine,
            "SELECT details FROM health_check_results WHERE check_name = "
            "'broken_schedules' ORDER BY checked_at DESC LIMIT 1",
        )
        if broken_id in details["broken"]:
            seen["health monitor"] = details["broken"][broken_id]
    check = subprocess.run(
        [BIN / "agnt-jobs", "schedules", "check"],
        env=ticking.env(db_url),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 1, check.stdout + check.stderr
    assert "Traceback" not in check.stdout + check.stderr
    lines = [line for line in check.stdout.splitlines() if line.startswith("broken: ")]
    if len(lines) == 1 and lines[0].startswith(f"broken: {broken_id} is broken"):
        seen["schedules check"] = lines[0]
    return seen


def test_a_corrupted_schedule_stops_alone_and_is_reported_everywhere(
    db_url: str, engine: Engine, admin: TestClient, tmp_path: Path
) -> None:
    env = ticking.env(db_url, AGNT_TEST_SCHEDULES=",".join((VICTIM, *WATCHED)))
    with ticking.workers(env, count=3, logs=tmp_path) as processes:
        ticking.wait_for(lambda: len(ticking.job_ticks(engine, VICTIM)) >= 2)
        [original] = sql(engine, "SELECT * FROM schedules WHERE id = :id", id=VICTIM)
        for constraint in ("ck_schedules_policy", "ck_schedules_timeout"):
            sql(engine, f"ALTER TABLE schedules DROP CONSTRAINT {constraint}")
        missing: dict[str, list[str]] = {}
        for name, change in CORRUPTIONS.items():
            broken_id = HOSTILE if name == "id hostile" else VICTIM
            triggers = "ALL" if broken_id == HOSTILE else "USER"
            as_owner(
                engine,
                f"UPDATE schedules SET {change} WHERE id = '{VICTIM}'",
                triggers=triggers,
            )
            corrupted_at = ticking.db_now(engine)
            # The workers find it and set it aside (one fault row, whichever
            # records it; each says so once in its log).
            ticking.wait_for(
                lambda broken_id=broken_id: bool(
                    sql(
                        engine,
                        "SELECT 1 FROM schedule_faults WHERE schedule_id = :id",
                        id=broken_id,
                    )
                )
            )
            seen = reported(db_url, engine, admin, broken_id)
            expected = {"registry page", "metrics", "health monitor", "schedules check"}
            if broken_id == VICTIM:
                expected.add("schedule page")
            if set(seen) != expected:
                missing[name] = sorted(expected - set(seen))
            # It alone stopped: no tick of it decided since, while the others are
            # (by when they were decided: a catch_up one may lag its ticks).
            ticking.wait_for(
                lambda corrupted_at=corrupted_at: all(
                    ticking.ticks(engine, id_)[-1].decided_at
                    > corrupted_at + 2 * SECOND
                    for id_ in WATCHED
                )
            )
            assert [
                t
                for t in ticking.ticks(engine, broken_id)
                if t.decided_at > corrupted_at + SECOND
            ] == [], name
            assert all(p.poll() is None for p in processes), name
            if name in RESTARTED:
                # A worker starting now declares the code's schedules past the
                # broken row, and runs.
                workers_before = ticking.query(
                    engine, "SELECT count(*) FROM schedule_workers"
                )[0][0]
                late = tmp_path / name.replace(" ", "_")
                late.mkdir()
                with ticking.workers(env, logs=late) as [starting]:
                    ticking.wait_for(
                        lambda before=workers_before: (
                            ticking.query(
                                engine, "SELECT count(*) FROM schedule_workers"
                            )[0][0]
                            > before
                        )
                    )
                    assert starting.poll() is None, (late / "w0.log").read_text()
            as_owner(
                engine,
                "UPDATE schedules SET id = :id, task_name = :id, cron = :cron, "
                "zone = :zone, queue = :queue, misfire_policy = :policy, "
                "timeout = :timeout, declared_timeout = :timeout, next_run_at = NULL, "
                "first_seen = :first_seen, cron_changed_at = now() "
                "WHERE id = :broken_id",
                triggers=triggers,
                id=VICTIM,
                cron=original.cron,
                zone=original.zone,
                queue=original.queue,
                policy=original.misfire_policy,
                timeout=original.timeout,
                first_seen=original.first_seen,
                broken_id=broken_id,
            )
            # Mended (a change: it starts from there), it ticks again.
            mended_at = ticking.db_now(engine)
            ticking.wait_for(
                lambda mended_at=mended_at: (
                    ticking.ticks(engine, VICTIM)[-1].decided_at > mended_at
                )
            )
        assert missing == {}

    for id_, period in (("test_tick", SECOND), ("test_skip", 2 * SECOND)):
        ticks = ticking.ticks(engine, id_)
        ticking.assert_every_tick_decided_once(ticks, period)
        deferred = [
            int(t.tick_at.timestamp()) for t in ticks if t.outcome == "deferred"
        ]
        assert ticking.job_ticks(engine, id_) == deferred
    assert timedelta(0) < ticking.db_now(engine) - original.first_seen
