"""A job deferred through the real App is run by a real worker, and its run is in
the history with the body's result summary."""

from __future__ import annotations

import sqlalchemy as sa
from procrastinate import App
from sqlalchemy.engine import Engine


async def _drain(app: App) -> None:
    async with app.open_async():
        await app.run_worker_async(wait=False, install_signal_handlers=False)


async def test_deferred_job_runs_and_is_recorded(app: App, engine: Engine) -> None:
    async with app.open_async():
        job_id = await app.tasks["selfcheck"].defer_async()
    await _drain(app)

    with engine.connect() as connection:
        job_status = connection.execute(
            sa.text("SELECT status FROM procrastinate_jobs WHERE id = :id"),
            {"id": job_id},
        ).scalar_one()
        run = connection.execute(
            sa.text("SELECT * FROM job_runs WHERE job_id = :id"), {"id": job_id}
        ).one()
    assert job_status == "succeeded"
    assert run.task_name == "selfcheck"
    assert run.attempt == 1
    assert run.status == "succeeded"
    assert run.finished_at >= run.started_at
    assert set(run.result) == {"database_ms"}
    assert run.error is None


async def test_failed_job_records_error(app: App, engine: Engine) -> None:
    from agnt_jobs.scheduler.bodies import BODIES
    from agnt_jobs.scheduler.tasks import make_task

    def explode(ctx):
        raise RuntimeError("venue gateway said no")

    BODIES["test_explode"] = explode
    try:
        make_task(app, "test_explode", explode)
        async with app.open_async():
            job_id = await app.tasks["test_explode"].defer_async()
        await _drain(app)
    finally:
        BODIES.pop("test_explode")
        app.tasks.pop("test_explode")

    with engine.connect() as connection:
        run = connection.execute(
            sa.text("SELECT status, error FROM job_runs WHERE job_id = :id"),
            {"id": job_id},
        ).one()
    assert run.status == "failed"
    assert "RuntimeError: venue gateway said no" in run.error


async def test_one_waiting_instance_per_job(app: App) -> None:
    """The queueing lock: a second manual trigger while one waits is refused."""
    from procrastinate.exceptions import AlreadyEnqueued

    async with app.open_async():
        await app.tasks["selfcheck"].defer_async()
        try:
            await app.tasks["selfcheck"].defer_async()
        except AlreadyEnqueued:
            pass
        else:
            raise AssertionError("a second waiting selfcheck was accepted")
