"""The maintenance duties against a real database: the stalled-job rescuer and the
retention cleaner, each on its own."""

from __future__ import annotations

import sqlalchemy as sa
from procrastinate import App
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler import maintenance
from agnt_jobs.settings import Settings
from tests.support.jobs import context
from tests.support.schedules import declare_earlier


async def _running_job(app: App, engine: Engine, *, dead: bool) -> int:
    """A selfcheck job 'doing' on a worker that is alive or long silent, with the
    history row the middleware writes when a run starts."""
    async with app.open_async():
        job_id = await app.tasks["selfcheck"].defer_async()
        worker_id = await app.job_manager.register_worker()
        job = await app.job_manager.fetch_job(queues=None, worker_id=worker_id)
    assert job is not None and job.id == job_id
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO job_runs (job_id, attempt, task_name, queue_name, "
                "worker_id) VALUES (:j, 1, 'selfcheck', 'default', :w)"
            ),
            {"j": job_id, "w": worker_id},
        )
        if dead:
            connection.execute(
                sa.text(
                    "UPDATE procrastinate_workers SET last_heartbeat = now() - "
                    "interval '1 hour' WHERE id = :w"
                ),
                {"w": worker_id},
            )
    return job_id


def _job(engine: Engine, job_id: int) -> tuple[str, int]:
    with engine.connect() as connection:
        return tuple(
            connection.execute(
                sa.text(
                    "SELECT status::text, attempts FROM procrastinate_jobs "
                    "WHERE id = :id"
                ),
                {"id": job_id},
            ).one()
        )


async def test_a_dead_workers_job_is_retried_and_its_run_closed(
    app: App, engine: Engine, env: Settings
) -> None:
    lost = await _running_job(app, engine, dead=True)
    assert maintenance.rescue_stalled_jobs(context(engine, env)) == {
        "retried": 1,
        "failed": 0,
    }
    assert _job(engine, lost) == ("todo", 1)
    with engine.connect() as connection:
        status, error = connection.execute(
            sa.text("SELECT status, error FROM job_runs WHERE job_id = :id"),
            {"id": lost},
        ).one()
    assert status == "failed"
    assert error.startswith("WorkerLost: worker ")
    # Nothing left to rescue: running it again changes nothing.
    assert maintenance.rescue_stalled_jobs(context(engine, env)) == {
        "retried": 0,
        "failed": 0,
    }


async def test_a_live_workers_job_is_left_alone(
    app: App, engine: Engine, env: Settings
) -> None:
    running = await _running_job(app, engine, dead=False)
    assert maintenance.rescue_stalled_jobs(context(engine, env)) == {
        "retried": 0,
        "failed": 0,
    }
    assert _job(engine, running) == ("doing", 0)


async def test_a_lost_run_fails_when_a_newer_run_already_waits(
    app: App, engine: Engine, env: Settings
) -> None:
    lost = await _running_job(app, engine, dead=True)
    async with app.open_async():
        await app.tasks["selfcheck"].defer_async()
    assert maintenance.rescue_stalled_jobs(context(engine, env)) == {
        "retried": 0,
        "failed": 1,
    }
    assert _job(engine, lost) == ("failed", 1)


async def test_a_job_that_keeps_losing_its_worker_is_failed(
    app: App, engine: Engine, env: Settings
) -> None:
    lost = await _running_job(app, engine, dead=True)
    settings = env.model_copy(update={"stalled_job_max_attempts": 1})
    assert maintenance.rescue_stalled_jobs(context(engine, settings)) == {
        "retried": 0,
        "failed": 1,
    }
    assert _job(engine, lost) == ("failed", 1)


async def test_retention_deletes_only_what_is_past_its_window(
    app: App, engine: Engine, env: Settings
) -> None:
    async with app.open_async():
        ids = [await app.configure_task("probe").defer_async() for _ in range(3)]
    old, recent, waiting = ids
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE procrastinate_jobs SET status = 'succeeded' "
                "WHERE id = ANY(:ids)"
            ),
            {"ids": [old, recent]},
        )
        connection.execute(
            sa.text(
                "UPDATE procrastinate_events SET at = now() - interval '8 days' "
                "WHERE job_id = :id"
            ),
            {"id": old},
        )
        connection.execute(
            sa.text(
                "INSERT INTO job_runs (job_id, attempt, task_name, queue_name, "
                "status, started_at) VALUES "
                "(:old, 1, 'selfcheck', 'default', 'succeeded', "
                " now() - interval '31 days'), "
                "(:recent, 1, 'selfcheck', 'default', 'succeeded', now())"
            ),
            {"old": old, "recent": recent},
        )
        declare_earlier(connection, "s")
        connection.execute(
            sa.text(
                "INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, reason) "
                "VALUES ('s', now() - interval '40 days', 'skipped', 'paused'), "
                "('s', now() - interval '35 days', 'skipped', 'paused')"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO schedule_workers (worker_id, hostname, pid, deployed) "
                "VALUES (999999, 'gone', 1, '{}')"
            )
        )

    counts = maintenance.clean_finished_jobs(context(engine, env))

    assert counts == {
        "jobs_deleted": 1,
        "runs_deleted": 1,
        "ticks_deleted": 1,
        "workers_deleted": 1,
    }
    with engine.connect() as connection:
        left = connection.execute(sa.text("SELECT id FROM procrastinate_jobs")).all()
        events = connection.execute(
            sa.text("SELECT count(*) FROM procrastinate_events WHERE job_id = :id"),
            {"id": old},
        ).scalar()
        ticks = connection.execute(sa.text("SELECT count(*) FROM schedule_ticks"))
        # A schedule's newest decision stays, however old: the deferrer resumes there.
        assert ticks.scalar() == 1
    assert sorted(row.id for row in left) == [recent, waiting]
    assert events == 0


def test_retention_deletes_every_old_run_and_tick_however_many_chunks(
    engine: Engine, env: Settings
) -> None:
    """Run history and tick decisions are deleted chunk after chunk until none
    past the window is left, not one chunk a run."""
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO job_runs (job_id, attempt, task_name, queue_name, "
                "status, started_at) SELECT n, 1, 'selfcheck', 'default', "
                "'succeeded', now() - interval '31 days' FROM generate_series(1, 25) n"
            )
        )
        declare_earlier(connection, "s")
        connection.execute(
            sa.text(
                "INSERT INTO schedule_ticks (schedule_id, tick_at, outcome, reason) "
                "SELECT 's', now() - interval '40 days' + n * interval '1 minute', "
                "'skipped', 'paused' FROM generate_series(1, 26) n"
            )
        )
    settings = env.model_copy(update={"job_chunk_size": 10})

    counts = maintenance.clean_finished_jobs(context(engine, settings))

    assert (counts["runs_deleted"], counts["ticks_deleted"]) == (25, 25)
    with engine.connect() as connection:
        runs = connection.execute(sa.text("SELECT count(*) FROM job_runs")).scalar()
    assert runs == 0
