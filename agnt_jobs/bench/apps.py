"""The two Apps the queue and scheduling benchmarks compare, each with the same
benchmark tasks. Imported only by the benchmark's worker processes
(``procrastinate --app=agnt_jobs.bench.apps.ours worker``, or the drain child):
importing it adds the benchmark tasks to the production App of that process.

* ``ours``: the production App (``agnt_jobs.app.app``: every schedule, the run
  history middleware, our connector and deferrer), plus ``bench_noop`` (no lock,
  for throughput) and ``bench_tick`` (a job like any production job, on a
  one-second schedule).
* both: ``bench_steps``, ``bench_blocked`` and ``bench_peer``, the jobs the
  shutdown benchmark stops (a checkpointed job, a job blocked on a row lock, a
  job waiting on a slow HTTP peer), the same bodies in each.
* ``plain``: a stock Procrastinate App on the same database with the same two
  tasks, ``bench_tick`` as a stock ``@app.periodic``, and the same worker
  concurrency and pool size, so the difference is what our code adds.
"""

from __future__ import annotations

import os
import time

import httpx
import psycopg
from procrastinate import App, PsycopgConnector

from agnt_jobs import checkpoint
from agnt_jobs.app import app as ours
from agnt_jobs.bench.base import NOOP, NOOP_QUEUE, STOP_JOBS, TICK
from agnt_jobs.db.budget import budget
from agnt_jobs.scheduler import deploy
from agnt_jobs.scheduler.bodies import JobResult, RunContext, job
from agnt_jobs.scheduler.declaration import Misfire, Schedule
from agnt_jobs.scheduler.tasks import make_task
from agnt_jobs.settings import get_settings

TICK_CRON = "* * * * * *"  # every second: the sixth field is seconds


# Seconds each bench_noop job waits, as a job waiting on an HTTP peer or Stripe
# does (0: a pure no-op, which measures the queue's own cost).
JOB_SECONDS = float(os.environ.get("AGNT_BENCH_JOB_SECONDS", "0"))


def _noop(ctx: RunContext) -> JobResult:
    if JOB_SECONDS:
        time.sleep(JOB_SECONDS)
    return {}


# Through the same wrapper as every production job (RunContext, settings, engine,
# history); only the locks differ, since N no-op jobs must be able to run at once.
job(NOOP)(_noop)
make_task(ours, NOOP, _noop, queue=NOOP_QUEUE)
ours.tasks[NOOP].lock = None
ours.tasks[NOOP].queueing_lock = None

job(TICK)(_noop)
make_task(ours, TICK, _noop)
# Only the scheduling benchmark's workers defer it: the queue benchmark measures
# the production registry alone.
TICKING = os.environ.get("AGNT_BENCH_TICK") == "1"
if TICKING:
    deploy.register(
        ours, [Schedule(TICK, TICK_CRON, "Benchmark: every second.", Misfire.SKIP)]
    )

_settings = get_settings()
plain = App(
    connector=PsycopgConnector(
        conninfo=os.environ.get("AGNT_DATABASE_URL", ""),
        min_size=_settings.pool_min_size,
        max_size=budget(_settings).queue_pool,
    ),
    worker_defaults={
        "concurrency": _settings.worker_concurrency,
        "shutdown_graceful_timeout": _settings.shutdown_graceful_timeout,
    },
)


@plain.task(name=NOOP, queue=NOOP_QUEUE)
def plain_noop() -> JobResult:
    if JOB_SECONDS:
        time.sleep(JOB_SECONDS)
    return {}


@plain.task(name=TICK, lock=TICK, queueing_lock=TICK)
def plain_tick(timestamp: int) -> JobResult:
    return {}


if TICKING:
    plain.periodic(cron=TICK_CRON, periodic_id=TICK)(plain_tick)


def _steps() -> JobResult:
    """Steps of 0.2 s, a checkpoint before each, for AGNT_BENCH_STEPS_SECONDS."""
    steps = round(float(os.environ.get("AGNT_BENCH_STEPS_SECONDS", "600")) / 0.2)
    for _ in range(steps):
        checkpoint.checkpoint()
        time.sleep(0.2)
    return {"steps": steps}


BLOCKED_UPDATE = "UPDATE bench_locked SET n = n + 1 WHERE id = 1"


def _blocked() -> JobResult:
    """One UPDATE of the row another session holds (``bench_locked``)."""
    with psycopg.connect(os.environ["AGNT_DATABASE_URL"]) as connection:
        connection.execute(BLOCKED_UPDATE)
    return {"updated": 1}


def _peer() -> JobResult:
    """One call to AGNT_BENCH_PEER_URL, bounded by its client's timeout."""
    timeout = float(os.environ.get("AGNT_BENCH_PEER_TIMEOUT", "30"))
    with httpx.Client(timeout=timeout) as client:
        client.get(os.environ["AGNT_BENCH_PEER_URL"])
    return {"called": 1}


def _ours_steps(ctx: RunContext) -> JobResult:
    return _steps()


def _ours_blocked(ctx: RunContext) -> JobResult:
    with ctx.engine.begin() as connection:  # the job engine, as every body
        connection.exec_driver_sql(BLOCKED_UPDATE)
    return {"updated": 1}


def _ours_peer(ctx: RunContext) -> JobResult:
    return _peer()


for _name, _body, _plain in zip(
    STOP_JOBS,
    (_ours_steps, _ours_blocked, _ours_peer),
    (_steps, _blocked, _peer),
    strict=True,
):
    job(_name)(_body)
    make_task(ours, _name, _body)
    plain.task(name=_name, lock=_name)(_plain)


APPS = {"ours": ours, "plain": plain}
