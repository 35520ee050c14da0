"""The audit views over real deferrals and real runs: schedule_overview,
job_run_audit and schedule_late_ticks, as the manual documents them."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from procrastinate import PsycopgConnector
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler import control, deploy, tasks
from agnt_jobs.scheduler.declaration import Schedule
from agnt_jobs.scheduler.deferrer import ScheduleDeferrer
from agnt_jobs.scheduler.history import record_run
from agnt_jobs.scheduler.worker import AgntApp
from agnt_jobs.settings import Settings

MINUTELY = Schedule("minutely", "* * * * *", "Each minute.")
NIGHTLY = Schedule("nightly", "0 2 * * *", "Each night.")


@pytest.fixture
async def app(db_url: str, env: Settings) -> AsyncIterator[AgntApp]:
    app = AgntApp(
        connector=PsycopgConnector(conninfo=db_url),
        worker_defaults={"worker_middleware": [record_run]},
    )
    for schedule in (MINUTELY, NIGHTLY):
        tasks.make_task(app, schedule.id, lambda ctx: {"done": 1})
    deploy.register(app, [MINUTELY, NIGHTLY])
    async with app.open_async():
        yield app


async def _run_waiting_jobs(app: AgntApp) -> None:
    # The deferrer is driven by hand here: run the worker without periodic tasks.
    registered = dict(app.periodic_registry.periodic_tasks)
    app.periodic_registry.periodic_tasks.clear()
    try:
        await app.run_worker_async(wait=False, install_signal_handlers=False)
    finally:
        app.periodic_registry.periodic_tasks.update(registered)


def _select(engine: Engine, sql: str, **params: object) -> list[dict]:
    with engine.connect() as connection:
        connection.execute(sa.text("SET agnt.late_after = '0 seconds'"))
        return [
            dict(row) for row in connection.execute(sa.text(sql), params).mappings()
        ]


async def test_views_show_schedules_runs_and_late_ticks(
    app: AgntApp, engine: Engine, env: Settings
) -> None:
    await deploy.sync_table(app)
    now = time.time()
    await ScheduleDeferrer(app, env, worker_id=None).defer_due(now)
    manual_job = await app.configure_task("nightly", queueing_lock=None).defer_async()
    await _run_waiting_jobs(app)
    control.set_enabled(app, engine, MINUTELY.id, False)
    await ScheduleDeferrer(app, env, worker_id=None).defer_due(now + 60)

    overview = {
        row["id"]: row for row in _select(engine, "SELECT * FROM schedule_overview")
    }
    minutely = overview["minutely"]
    assert minutely["enabled"] is False
    assert (minutely["last_tick_outcome"], minutely["last_tick_reason"]) == (
        "skipped",
        "paused",
    )
    assert minutely["last_run_status"] == "succeeded"
    assert minutely["last_run_result"] == {"done": 1}
    assert minutely["next_run_at"] > datetime.fromtimestamp(now + 60, UTC)
    assert overview["nightly"]["last_tick_at"] is None
    assert overview["nightly"]["last_run_status"] == "succeeded"

    runs = {
        row["job_name"]: row
        for row in _select(engine, "SELECT * FROM job_run_audit ORDER BY job_id")
    }
    scheduled = runs["minutely"]
    tick = MINUTELY.latest_at(datetime.fromtimestamp(now, UTC))
    assert scheduled["trigger"] == "schedule"
    assert scheduled["schedule_id"] == "minutely"
    assert scheduled["scheduled_tick"] == tick
    assert scheduled["status"] == "succeeded"
    assert scheduled["attempts"] == 1
    assert scheduled["deferred_at"] <= scheduled["started_at"]
    assert scheduled["started_at"] <= scheduled["finished_at"]
    assert scheduled["duration"] == scheduled["finished_at"] - scheduled["started_at"]
    assert scheduled["worker_name"] == "worker"
    assert scheduled["result"] == {"done": 1}
    manual = runs["nightly"]
    assert (manual["job_id"], manual["trigger"], manual["scheduled_tick"]) == (
        manual_job,
        "manual",
        None,
    )

    late = _select(engine, "SELECT * FROM schedule_late_ticks ORDER BY tick_at")
    assert [(row["schedule_id"], row["kind"]) for row in late] == [
        ("minutely", "late"),  # started after its tick: anything is late at 0 s
        ("minutely", "paused"),
    ]


async def test_an_overdue_schedule_is_listed_when_no_worker_defers_it(
    app: AgntApp, engine: Engine
) -> None:
    await deploy.sync_table(app)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE schedules SET next_run_at = now() - interval '1 hour' "
                "WHERE id = 'nightly'"
            )
        )
    late = _select(engine, "SELECT schedule_id, kind FROM schedule_late_ticks")
    assert late == [{"schedule_id": "nightly", "kind": "overdue"}]


async def test_the_manuals_queries_run(db_url: str, engine: Engine) -> None:
    """Every SQL example of the manual runs on the schema as it is, once workers of
    this code have declared its schedules."""
    from agnt_jobs.app import app as agnt_app

    with agnt_app.replace_connector(PsycopgConnector(conninfo=db_url)) as real:
        async with real.open_async():
            await deploy.sync_table(real)
    docs = Path(__file__).resolve().parents[2] / "docs"
    blocks = [
        block
        for page in sorted(docs.glob("*.md"))
        for block in re.findall(r"```sql\n(.*?)```", page.read_text(), re.S)
    ]
    assert len(blocks) >= 3
    with engine.connect() as connection:
        for block in blocks:
            for statement in filter(str.strip, block.split(";")):
                connection.exec_driver_sql(statement)
