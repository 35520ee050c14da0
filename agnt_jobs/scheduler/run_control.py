"""What operators do with runs: run a job now or at a time, cancel a run, retry
one or every failed run of a job in a window, and follow a run until it ends.
The CLI (and the admin view) are thin layers over these functions; what they do
with schedules is ``schedule_control``'s.

A run is a Procrastinate job. Runs are deferred in a transaction of the caller's
engine; cancel and retry are the database's run functions, which check the run's
state and record who asked in ``job_run_actions``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import attr
import psycopg
import sqlalchemy.exc
from procrastinate import exceptions
from procrastinate.jobs import JobDeferrer
from procrastinate.manager import JobManager
from procrastinate.tasks import Task
from sqlalchemy.engine import Engine

from agnt_jobs.db.connector import TracedSyncConnector
from agnt_jobs.errors import Conflict, Invalid, NotFound
from agnt_jobs.scheduler.bodies import require_configured
from agnt_jobs.scheduler.deploy import SQL
from agnt_jobs.scheduler.operators import Actor, refused_by_database
from agnt_jobs.scheduler.worker import AgntApp
from agnt_jobs.settings import Settings

FINAL_STATUSES = ("succeeded", "failed", "cancelled", "aborted")

# Every instant an operator gives (a run's time, the ends of a window of runs),
# from any door, lies in this range: a job deferred centuries ahead would wait
# for ever, and a time past year 9999 is one no page could show.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
FARTHEST_AHEAD = timedelta(days=3653)  # ten years


def check_instant(name: str, when: datetime, now: datetime | None = None) -> None:
    """Invalid (at ``name``) unless ``when`` (aware) lies between 1970 and ten
    years from now."""
    latest = (now or datetime.now(UTC)) + FARTHEST_AHEAD
    # Aware datetimes compare without converting: no overflow near year 1 or 9999.
    if when.tzinfo is None or not EARLIEST <= when <= latest:
        raise Invalid(
            f"{name} {when.isoformat()[:40]} is out of range: give a time between "
            f"1970-01-01 and {latest:%Y-%m-%d} (ten years from now)",
            name,
        )


class AlreadyWaiting(Conflict):
    """A run of the job already waits (its queueing lock): ``job_id`` is that
    run's, when it could be read."""

    def __init__(self, job_name: str, job_id: int | None) -> None:
        super().__init__(
            f"{job_name} already has a run waiting (job {job_id}); "
            "not deferring another"
        )
        self.job_name, self.job_id = job_name, job_id

    # Nothing was wrong with the request: the run it asks for is already there.
    exit_code = 1


def job_task(app: AgntApp, name: str) -> Task[..., Any, ...]:
    """The task of a job that can run here, or NotFound saying why not."""
    task = app.tasks.get(name)
    if task is not None:
        return task
    if name in app.schedules:
        raise NotFound(f"{name} is declared but has no job body in this deployment")
    raise NotFound(f"unknown job {name!r}: 'agnt-jobs schedules list' shows them all")


# Defers on a connection the caller gives it, never through a pool of its own: the
# App's connector may be closed (the CLI), or open on another event loop (a web
# backend that mounts the admin view), and opening and closing the App around each
# call would race between the admin's request threads.
_ON_CONNECTION = JobManager(TracedSyncConnector())


def run_now(app: AgntApp, engine: Engine, settings: Settings, name: str) -> int:
    """Defer a run of the job ``name`` now (its tick is now); the run's job id. Raises
    AlreadyWaiting when one already waits (the queueing lock), NotConfigured when
    a setting it needs is unset (it would only fail).

    The job is inserted in a transaction of ``engine``, so this is safe from any
    thread, whatever state the App's own connector is in."""
    task = job_task(app, name)
    require_configured(name, settings)
    job = task.configure().job
    try:
        with engine.begin() as connection:
            driver = connection.connection.driver_connection
            return JobDeferrer(_ON_CONNECTION, job, connection=driver).defer()
    except exceptions.AlreadyEnqueued:
        with engine.connect() as connection:
            job_id = connection.exec_driver_sql(
                SQL["waiting_job"], {"queueing_lock": task.queueing_lock}
            ).scalar()
        raise AlreadyWaiting(name, job_id) from None


def run_at(
    app: AgntApp,
    engine: Engine,
    settings: Settings,
    name: str,
    when: datetime,
    actor: Actor,
) -> int:
    """Defer a run of job ``name`` for ``when`` (an aware instant in the future);
    its tick is ``when``. It waits as ``todo`` until then, shown as scheduled in
    ``job_run_audit``; without the queueing lock, so the job's scheduled ticks are
    not held back meanwhile (the job lock still keeps runs from overlapping)."""
    task = job_task(app, name)
    require_configured(name, settings)
    check_instant("at", when)
    if when <= datetime.now(when.tzinfo):
        raise Invalid(f"{when.isoformat()} is in the past: give a future time", "at")
    job = task.configure(
        schedule_at=when, task_kwargs={"timestamp": int(when.timestamp())}
    ).job
    job = attr.evolve(job, queueing_lock=None)
    with engine.begin() as connection:
        driver = connection.connection.driver_connection
        job_id = JobDeferrer(_ON_CONNECTION, job, connection=driver).defer()
        connection.exec_driver_sql(
            SQL["record_run_action"],
            {
                "job_id": job_id,
                "action": "run_at",
                "by": actor.by,
                "source": actor.source,
            },
        )
    return job_id


def cancel(engine: Engine, job_id: int, actor: Actor) -> str:
    """Cancel a run: ``cancelled`` (it was waiting) or ``cancelling`` (it stops at
    its next checkpoint and ends cancelled). NotFound, or Conflict for a run that
    already ended."""
    status: str = _run_request(engine, SQL["cancel_run"], {"job_id": job_id}, actor)
    return status


def retry(engine: Engine, job_id: int, actor: Actor) -> int:
    """Run again a failed, timed-out or cancelled run; the new job's id."""
    new_job_id: int = _run_request(engine, SQL["retry_run"], {"job_id": job_id}, actor)
    return new_job_id


def waits_until(engine: Engine, job_id: int) -> datetime | None:
    """When a waiting run is set to start; None if it starts when a worker is
    free (or no longer waits)."""
    with engine.connect() as connection:
        return connection.exec_driver_sql(
            SQL["waits_until"], {"job_id": job_id}
        ).scalar()


def retry_all(
    engine: Engine, job: str, since: datetime, until: datetime, actor: Actor
) -> list[tuple[int, int]]:
    """Retry every failed, timed-out or cancelled run of ``job`` that ended in
    [since, until) and has no retry under way; (run, retry) job ids."""
    check_instant("since", since)
    check_instant("until", until)
    params = {"job": job, "since": since, "until": until}
    rows = _run_request(engine, SQL["retry_runs"], params, actor, all_rows=True)
    return [(row[0], row[1]) for row in rows]


def _run_request(
    engine: Engine,
    query: str,
    params: dict[str, Any],
    actor: Actor,
    all_rows: bool = False,
) -> Any:
    """One call of a run function (``agnt_cancel_run``, ``agnt_retry_run``...): an
    unknown id or job is NotFound, a request the run's state forbids is Conflict."""
    params = {**params, "by": actor.by, "source": actor.source}
    try:
        with engine.begin() as connection:
            result = connection.exec_driver_sql(query, params)
            return result.all() if all_rows else result.scalar()
    except sqlalchemy.exc.DBAPIError as error:
        if isinstance(error.orig, psycopg.errors.NoDataFound):
            raise NotFound(refused_by_database(error)) from None
        if isinstance(error.orig, psycopg.errors.ObjectNotInPrerequisiteState):
            raise Conflict(refused_by_database(error)) from None
        raise


def job_state(engine: Engine, job_id: int) -> dict[str, Any] | None:
    with engine.connect() as connection:
        row = (
            connection.exec_driver_sql(SQL["job_state"], {"job_id": job_id})
            .mappings()
            .first()
        )
    return dict(row) if row else None


def wait_for(
    engine: Engine, job_id: int, timeout: float | None, poll: float = 0.2
) -> dict[str, Any]:
    """Poll a job until it ends (or ``timeout`` seconds pass); its last state."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        state = job_state(engine, job_id) or {"status": "deleted"}
        if state["status"] in (*FINAL_STATUSES, "deleted"):
            return state
        if deadline is not None and time.monotonic() > deadline:
            return state
        time.sleep(poll)
