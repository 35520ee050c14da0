"""Every job body becomes a Procrastinate task named after its job id.

Each task takes the lock and the queueing lock of its id (never two running, at most
one waiting) and accepts an optional ``timestamp``: the periodic deferrer passes the
tick, a manual ``procrastinate defer <id>`` passes nothing and the tick is now.
"""

from __future__ import annotations

from datetime import UTC, datetime

from procrastinate import App, JobContext
from procrastinate.tasks import Task

from agnt_jobs import db, logs
from agnt_jobs.scheduler.bodies import BODIES, JobBody, JobResult, RunContext
from agnt_jobs.settings import get_settings

DEFAULT_QUEUE = "default"


def make_task(app: App, job_id: str, body: JobBody, queue: str = DEFAULT_QUEUE) -> Task:
    def run(context: JobContext, timestamp: int | None = None) -> JobResult:
        now = datetime.now(UTC)
        tick = datetime.fromtimestamp(timestamp, UTC) if timestamp else now
        with logs.job_context(context.job.id, job_id):
            return body(
                RunContext(
                    engine=db.engine(),
                    settings=get_settings(),
                    tick=tick,
                    now=now,
                    job_id=context.job.id,
                )
            )

    run.__name__ = run.__qualname__ = job_id
    run.__doc__ = body.__doc__
    run.__module__ = body.__module__
    return app.task(
        name=job_id,
        queue=queue,
        lock=job_id,
        queueing_lock=job_id,
        pass_context=True,
    )(run)


def register_all(app: App) -> None:
    for job_id, body in sorted(BODIES.items()):
        if job_id not in app.tasks:
            make_task(app, job_id, body)
