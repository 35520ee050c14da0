"""Procrastinate's App and Worker with our start-up, our deferrer and our resilience,
so that the stock ``procrastinate --app=agnt_jobs.app.app worker`` does everything
``agnt-jobs worker`` does: sync the schedules table, warn about schedules without a
body, defer each schedule in its zone under its misfire policy, and outlive a lost
database (every loop retries with backoff; a fault never ends it with exit 0).
How it stops, and why no job runs on two workers at once, is
``agnt_jobs.scheduler.stopping``.

The seams are methods private to Procrastinate, which is pinned to a minor
version: ``App._worker`` (which worker class to build), and on the worker ``run``'s
start-up, ``_start_side_tasks`` (our supervised loops: the schedule deferrer and
the one listener among them), ``_handle_notification``,
``_fetch_and_process_jobs`` (replaced: it claims a batch, below),
``_process_job`` (called as is, one task per job), ``_persist_job_status``,
and ``_shutdown``.
The acceptance and fault tests start real ``procrastinate`` workers, so a change
in any of them fails them; ``tests/integration/test_batch_claim.py`` holds our
claim against Procrastinate's own fetch on the same jobs.

**Claiming in batches.** Where Procrastinate fetches one job per round trip (its
``procrastinate_fetch_job_v2``), the worker claims as many jobs as it has free
slots in one statement (the SQL function ``agnt_claim_jobs``: the jobs that fetch
would return called that many times in a row), and the same statement records
each claimed run's start in ``job_runs`` and reads its timeout. The rest is
Procrastinate's: each job runs in its own task through ``_process_job`` (context,
middleware, outcome, ``_persist_job_status``), the semaphore counts the slots,
and the loop stops at the stop event or when the queue has nothing more for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from procrastinate import job_context, jobs, retry, utils, worker
from procrastinate.manager import get_channel_for_queues

from agnt_jobs import db, logs, tracing
from agnt_jobs.db.outage import (
    Backoff,
    DatabaseGone,
    Outage,
    as_database_error,
    is_connection_lost,
    until_reached,
)
from agnt_jobs.scheduler import deploy, maintenance
from agnt_jobs.scheduler.deferrer import CHANNEL, ScheduleDeferrer
from agnt_jobs.scheduler.history import (
    RUN_TIMEOUT,
    START_RUNS,
    HistoryWriter,
    writer_for,
)
from agnt_jobs.scheduler.probes import WorkerProbes
from agnt_jobs.scheduler.stopping import (
    FENCE_TASK,
    HEARTBEAT_TASK,
    SQL,
    StoppingWorker,
)
from agnt_jobs.settings import get_settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A heartbeat that also says whether the worker's row still exists, and records
# whether its pool is starved of connections (since the first beat that saw it).
HEARTBEAT = """
WITH beat AS (
    UPDATE procrastinate_workers SET last_heartbeat = now()
    WHERE id = %(worker_id)s RETURNING id
), starved AS (
    UPDATE schedule_workers
    SET starved_since = CASE WHEN %(starved)s::text IS NULL THEN NULL
                             ELSE coalesce(starved_since, now()) END,
        starved_reason = %(starved)s::text
    WHERE worker_id = %(worker_id)s
      AND starved_reason IS DISTINCT FROM %(starved)s::text
)
SELECT (SELECT id FROM beat) AS alive
"""

# Up to ``n`` jobs for this worker, marked running under it, each run's start
# recorded (its timeout returned beside it), in the order they are to start; none
# if the worker gave this claim (numbered ``claim``) up already.
CLAIM_JOBS = f"""
WITH claimed AS (
    SELECT * FROM agnt_fenced_claim(
        %(queues)s::varchar[], %(worker_id)s, %(n)s, %(claim)s
    )
), started AS ({
    START_RUNS.format(
        runs="(SELECT id AS job_id, attempts + 1 AS attempt, task_name, "
        "queue_name FROM claimed) AS run"
    )
})
SELECT id, status, task_name, priority, lock, queueing_lock, args, scheduled_at,
       queue_name, attempts, worker_id, agnt_run_timeout(id, task_name) AS timeout
FROM claimed
ORDER BY priority DESC, id
"""

#: How long a worker whose lost claim still runs on the server waits before it
#: tries again to give its claims up (``give_up_claims``); it claims nothing
#: meanwhile.
GIVE_UP_RETRY_SECONDS = 0.25

#: In a claimed job's ``additional_context`` while the job holds one of the
#: worker's slots: from its claim until its body ends (its end is recorded after
#: its slot is free).
HOLDS_SLOT = "agnt_holds_slot"

# What Python gives a loop's default executor, and how many threads beyond the
# worker's concurrency we keep for other to_thread callers.
DEFAULT_EXECUTOR_THREADS = min(32, (os.cpu_count() or 1) + 4)
SPARE_THREADS = 2


class WorkerFailed(Exception):
    """The worker stopped because of a fault it cannot outlive: it exits non-zero
    (the stock CLI prints this message and exits 1)."""


class AgntWorker(StoppingWorker):
    app: AgntApp
    #: The run history's connection while the worker runs (agnt_jobs.scheduler.history).
    history: HistoryWriter | None = None
    #: The database as this worker saw it last; every loop reports to it.
    outage: Outage

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        settings = get_settings()
        self.outage = Outage(
            report_seconds=settings.db_outage_report_seconds,
            limit_seconds=settings.database_outage_limit_seconds,
        )
        self._retry = (settings.db_retry_initial_seconds, settings.db_retry_max_seconds)
        self._deferrer: ScheduleDeferrer | None = None
        self._claim_cooldown = settings.worker_claim_cooldown_seconds
        #: The schedules table's sync at start (``run``).
        self._synced: asyncio.Task[Any] | None = None
        #: Set once the first claim is answered or failed: the sync may start.
        self._claimed_once = asyncio.Event()
        #: A claim's answer was lost: the claims sent so far are given up and the
        #: jobs they may have taken given back before the next claim.
        self._claims_unknown = False
        #: The number of the last claim sent (``agnt_fenced_claim``).
        self._claims_sent = 0
        #: When the fetch loop may claim again after a claim that found nothing.
        self._claim_not_before = 0.0
        #: Why the worker stopped itself, if it did: it then exits non-zero.
        self.failure: str | None = None

    def backoff(self) -> Backoff:
        return Backoff(*self._retry)

    async def reached(self, where: str, operation: Callable[[], Awaitable[T]]) -> T:
        """``operation``, retried until the database answers it. A stopping worker
        waits for the database at most its graceful timeout, then the error is
        raised (what was not recorded is left to ``rescue_stalled_jobs``)."""
        return await until_reached(
            operation,
            where=where,
            outage=self.outage,
            backoff=self.backoff(),
            stopping=self._waited_enough,
        )

    def _waited_enough(self) -> bool:
        since, timeout = self._stop_requested_at, self.shutdown_graceful_timeout
        if since is None or timeout is None:
            return False
        return time.monotonic() - since > timeout

    async def run(self) -> None:
        # The schedules table is synced once the first claim is answered
        # (``_sync_table``), while the first jobs run, not before the start: the
        # claims need none of it (a run's timeout is read from the table at its
        # claim, as another worker's claim reads it), only the deferrer does, and
        # it waits for the sync (``_deferrer_loop``). On a 2-core machine the
        # sync of 40-odd schedules took 40 ms, most of a short drain's start
        # (the queue benchmark's 50 ms jobs). A database without our schema, or
        # one that refuses a declared schedule, still stops the worker with the
        # sync's one-line reason: whatever else failed meanwhile, the sync's
        # error is raised; and a sync that fails after jobs were claimed stops
        # the worker, its jobs ended as at any stop, before the error is raised.
        # A database not there yet is waited for, as during any outage.
        self._size_executor()
        self._claimed_once = asyncio.Event()
        synced = self._synced = asyncio.create_task(
            self._sync_table(), name="sync schedules"
        )
        synced.add_done_callback(self._stop_if_sync_failed)
        writer = writer_for(self.app.connector)
        try:
            try:
                # The sync starts at the latest when the worker's run ends.
                with _setting(self._claimed_once):
                    await self._run_with(writer)
            except BaseException as error:
                if isinstance(error, Exception | asyncio.CancelledError):
                    # The sync's reason first: a database without our schema
                    # fails the prune or the claim too.
                    await self._sync_failure_first()
                raise
            # A worker that stopped before its sync ended (nothing to claim)
            # still deploys its schedules, and reports a sync that failed.
            await synced
        except DatabaseGone as gone:
            self.failure = str(gone)
        status = self.exit_status()
        if status is not None:
            # A job's thread still runs (put back already), or a second signal.
            self.exit_process(1 if self.failure else status)
        if self.failure:
            raise WorkerFailed(self.failure)

    async def _sync_table(self) -> list[str]:
        """Sync the schedules table once the first claim has been answered (or
        failed, or the worker claims no more): the prune, the register and the
        first claim do not share the two cores with the sync's 40 ms of work,
        which runs while the first jobs do."""
        await self._claimed_once.wait()
        return await self.reached("start", lambda: deploy.sync_table(self.app))

    async def _run_with(self, writer: HistoryWriter | None) -> None:
        if writer is None:
            await self._run()
            return
        async with writer:
            self.history = writer
            try:
                await self._run()
            finally:
                self.history = None

    def _stop_if_sync_failed(self, synced: asyncio.Task[Any]) -> None:
        if not synced.cancelled() and synced.exception() is not None:
            self.stop()

    async def _sync_failure_first(self) -> None:
        """Raise the sync's error, if the sync failed (waiting for it to end)."""
        synced = self._synced
        if synced is None:
            return
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([synced])
        if synced.done() and not synced.cancelled():
            error = synced.exception()
            if error is not None:
                raise error from None

    async def _deferrer_loop(self) -> None:
        """The deferrer, once the schedules table holds this worker's
        declarations (it follows the table); none if the sync failed (the worker
        stops with its reason)."""
        assert self._deferrer is not None
        if self._synced is not None:
            try:
                await asyncio.shield(self._synced)
            except Exception:
                return
        await self._deferrer.worker()

    async def _run(self) -> None:
        """Procrastinate's ``Worker.run``, with its two start-up queries waiting out
        a lost database like every other query of the worker."""
        self._stop_event.clear()
        await self.reached(
            "start",
            lambda: self.app.job_manager.prune_stalled_workers(
                self.stalled_worker_timeout
            ),
        )
        registering = time.monotonic()
        self.worker_id = await self.reached(
            "register", self.app.job_manager.register_worker
        )
        self.heartbeat_reached(registering)
        self.run_task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        # Procrastinate's Worker._run_loop has no annotations.
        run_loop = self._run_loop()  # type: ignore[no-untyped-call]
        loop_task = asyncio.create_task(run_loop, name="worker loop")
        try:
            # Cancelling the worker stops it gracefully rather than mid-job.
            await asyncio.shield(loop_task)
        except asyncio.CancelledError:
            self.stop()
            await loop_task
            raise
        finally:
            self._loop = None

    def fail(self, reason: str) -> None:
        """Stop the worker because of a fault; it will exit non-zero."""
        if self.failure is None:
            self.failure = reason
            logger.error(
                f"worker stopping: {reason}",
                extra=logs.event("worker_failed", reason=reason),
            )
        self.stop()

    def _size_executor(self) -> None:
        """Give the event loop enough threads to run ``concurrency`` job bodies.

        Procrastinate runs a sync task in the loop's default executor, which Python
        sizes min(32, cpus + 4): 6 threads on a 2-core machine, so a worker at
        concurrency 10 ran 6 bodies and left 4 fetched jobs waiting for a thread
        (the queue benchmark: 50 ms jobs at 115/s, where 10 threads give 190/s).
        A few threads more than the jobs serve ``asyncio.to_thread`` callers.
        """
        threads = self.concurrency + SPARE_THREADS
        if threads > DEFAULT_EXECUTOR_THREADS:
            asyncio.get_running_loop().set_default_executor(
                ThreadPoolExecutor(max_workers=threads, thread_name_prefix="agnt-job")
            )

    # --- the loops: each outlives a lost database ---------------------------------

    def _start_side_tasks(self) -> list[asyncio.Task[Any]]:
        self._deferrer = ScheduleDeferrer(
            app=self.app,
            settings=get_settings(),
            worker_id=self.worker_id,
            outage=self.outage,
        )
        loops: dict[str, Callable[[], Awaitable[Any]]] = {
            HEARTBEAT_TASK: self._heartbeat,
            FENCE_TASK: self._fence,
            "rescuer": self._rescue_stalled_jobs,
            "deferrer": self._deferrer_loop,
            "abort_poller": self._poll_jobs_to_abort,
        }
        if self.listen_notify:
            loops["listener"] = self._listen
        tasks = [
            asyncio.create_task(self._supervised(name, loop), name=name)
            for name, loop in loops.items()
        ]
        settings = get_settings()
        if settings.probe_port is not None:
            probe = WorkerProbes(
                list(tasks),
                failure=lambda: self.failure,
                stopping=self._stop_event.is_set,
                query_one=self.app.connector.execute_query_one_async,
            )
            serve = functools.partial(
                probe.serve, settings.probe_host, settings.probe_port
            )
            tasks.append(
                asyncio.create_task(self._supervised("probes", serve), name="probes")
            )
        return tasks

    async def _supervised(self, name: str, loop: Callable[[], Awaitable[Any]]) -> None:
        """Run ``loop`` for the worker's lifetime: a lost database restarts it after
        a backoff; anything else, or an outage past its limit, stops the worker
        with a non-zero exit (never a silent exit 0)."""
        backoff = self.backoff()
        while True:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not is_connection_lost(error):
                    self.fail(f"{name} failed: {as_database_error(error)!r}")
                    return
                self.outage.lost(name, error)
                try:
                    self.outage.check_limit()
                except DatabaseGone as gone:
                    self.fail(str(gone))
                    return
                await asyncio.sleep(backoff.delay())

    async def _heartbeat(self) -> None:
        """Beat every ``update_heartbeat_interval``; a worker whose row was pruned
        while the database was away (other workers judged it dead) registers
        again, so its fetches and heartbeats refer to a live row."""
        while True:
            sent = time.monotonic()
            beat = await self.app.connector.execute_query_one_async(
                HEARTBEAT, worker_id=self.worker_id, starved=self._starved()
            )
            self.outage.back()
            if beat["alive"] is None:
                old, self.worker_id = (
                    self.worker_id,
                    await self.reached(
                        "register", self.app.job_manager.register_worker
                    ),
                )
                logger.warning(
                    f"worker {old} was pruned while the database was away; "
                    f"registered again as {self.worker_id}",
                    extra=logs.event(
                        "worker_registered_again", old=old, worker_id=self.worker_id
                    ),
                )
                if self._deferrer is not None:
                    self._deferrer.worker_id = self.worker_id
                    await self._deferrer.record_worker()
            self.heartbeat_reached(sent)
            await asyncio.sleep(self.update_heartbeat_interval)

    def _starved(self) -> str | None:
        """Why the queue pool could not get a connection lately (a full server),
        or None."""
        starved = getattr(self.app.connector, "starved", None)
        return None if starved is None else str(starved).strip().splitlines()[-1]

    async def _rescue_stalled_jobs(self) -> None:
        """Every third of ``stalled_worker_timeout``, retry the running jobs of
        workers judged dead (the ``rescue_stalled_jobs`` job's pass, which runs
        once a minute): a killed worker's jobs are retried within the stall
        timeout and a third of it."""
        settings = get_settings()
        while True:
            await asyncio.sleep(self.stalled_worker_timeout / 3)
            await asyncio.to_thread(maintenance.rescue_stalled, db.engine(), settings)

    async def _poll_jobs_to_abort(self) -> None:
        while True:
            await asyncio.sleep(self.abort_job_polling_interval)
            if not self._running_jobs:
                continue
            job_ids = await self.app.job_manager.list_jobs_to_abort_async()
            self.outage.back()
            self._handle_abort_jobs_requested(job_ids)

    async def _listen(self) -> None:
        """LISTEN, on one connection of its own, for new jobs and aborts (while it
        is down the fetch loop polls instead, every ``fetch_job_polling_interval``)
        and for changes of the schedules table, each of which wakes the deferrer.
        One session for both: a fleet's listeners are a worker each. Whatever
        changed while it was not listening is read by the pass this start asks
        for."""
        deferrer = self._deferrer
        assert deferrer is not None
        deferrer.wake()

        async def dispatch(*, channel: str, payload: str) -> None:
            if channel == CHANNEL:
                await deferrer.on_notification(channel=channel, payload=payload)
            else:
                await self._handle_notification(
                    channel=channel, notification=json.loads(payload)
                )

        await self.app.connector.listen_notify(
            on_notification=dispatch,
            channels=[*get_channel_for_queues(queues=self.queues), CHANNEL],
        )
        # listen_notify returns only if it could not listen at all.
        raise ConnectionError("could not LISTEN for new jobs and schedule changes")

    async def _fetch_and_process_jobs(self) -> None:
        if self.fenced():
            return  # its heartbeats fail: it takes no job it may have to give up
        try:
            await self._claim_and_process_jobs()
        except Exception as error:
            if not is_connection_lost(error):
                raise
            self.outage.lost("fetch", error)
            # The server may have run the claim whose answer was lost.
            self._claims_unknown = True
            try:
                self.outage.check_limit()
            except DatabaseGone as gone:
                self.fail(str(gone))
                return
            # The run loop polls again after fetch_job_polling_interval; wait no
            # longer than the backoff so the first fetch after the outage is prompt.
            await asyncio.sleep(min(self._retry[1], self.fetch_job_polling_interval))
        else:
            self.outage.back()

    async def _claim_and_process_jobs(self) -> None:
        """Claim jobs for every free slot and start them, until the worker stops
        or the queue has fewer jobs for it than it has slots."""
        if self._claims_unknown:
            if not await self._give_back_lost_claims():
                # A claim given up on still runs on the server. The run loop
                # calls again at once while a new job's notification is pending.
                await utils.wait_any(
                    asyncio.sleep(GIVE_UP_RETRY_SECONDS), self._stop_event.wait()
                )
                return
            self._claims_unknown = False
        while not self._stop_event.is_set():
            await self._cool_down()
            slots = await self._take_free_slots()
            if not slots:
                return
            # A notification from now on asks for another look.
            self._new_job_event.clear()
            try:
                rows = await self._claim(slots)
            except BaseException:
                self._give_back_slots(slots)
                raise
            finally:
                self._claimed_once.set()
            self._give_back_slots(slots - len(rows))
            for row in rows:
                self._start_job(row)
            if not rows:
                self._claim_not_before = time.monotonic() + self._claim_cooldown * (
                    random.uniform(0.5, 1.0)
                )
            if len(rows) < slots:
                return

    async def _cool_down(self) -> None:
        """After a claim that found nothing, wait out the claim cooldown before
        the next claim: every job's notification wakes every listening worker,
        and without it a fleet of idle workers made one claim each per job
        deferred, all but one of them empty. Notifications that arrive meanwhile
        stay in the new-job event and make one claim. Random between half and
        all of the cooldown, so that a fleet woken by one notification does not
        claim again in step. A claim that took a job sets none, however short
        it came back: the next job on a lock it holds is handed over by the
        end's notification, at once (a cooldown there made such jobs run 20 a
        second instead of 200)."""
        delay = self._claim_not_before - time.monotonic()
        if delay > 0:
            await utils.wait_any(asyncio.sleep(delay), self._stop_event.wait())

    async def _give_back_lost_claims(self) -> bool:
        """Give back the jobs the database holds as this worker's that it does not
        run: claimed by a statement whose answer never reached it. Every claim sent
        so far is given up first: one still on its way (queued in PgBouncer, or
        running on the server after the worker's socket was cut) takes nothing
        when it arrives. False, and nothing given back, while a claim is under way
        on the server: it may still commit."""
        assert self.worker_id is not None
        if not await self.app.connector.execute_query_all_async(
            SQL["give_up_claims"], worker_id=self.worker_id, claim=self._claims_sent
        ):
            return False
        running = [context.job.id for context in self._running_jobs.values()]
        rows = await self.app.connector.execute_query_all_async(
            SQL["give_back_lost_claims"],
            worker_id=self.worker_id,
            running=[job_id for job_id in running if job_id is not None],
            error="ClaimLost: the worker never received the claim of this run; "
            "given back",
        )
        for row in rows:
            outcome = (
                "failed, a newer job of its queueing lock waits"
                if row["superseded"]
                else "given back, due now"
            )
            logger.warning(
                f"job {row['id']} was claimed for this worker by a statement whose "
                f"answer was lost: {outcome}",
                extra=logs.event(
                    "lost_claim_given_back",
                    job_id=row["id"],
                    superseded=row["superseded"],
                ),
            )
        return True

    async def _take_free_slots(self) -> int:
        """Wait for a free slot, then take every other one free now: the batch's
        size. 0 once the worker is asked to stop."""
        first = asyncio.ensure_future(self._job_semaphore.acquire())
        await utils.wait_any(first, self._stop_event.wait())
        if self._stop_event.is_set():
            if first.done() and not first.cancelled():
                self._job_semaphore.release()
            return 0
        slots = 1
        while slots < self.concurrency and not self._job_semaphore.locked():
            await self._job_semaphore.acquire()  # free: returns at once
            slots += 1
        return slots

    def _give_back_slots(self, count: int) -> None:
        for _ in range(count):
            self._job_semaphore.release()

    async def _claim(self, n: int) -> list[dict[str, Any]]:
        """Claim up to ``n`` jobs, on a pool connection of its own: not on the run
        history's, where a claim that waits (a lock on the worker's row, which
        the claim's foreign key takes) would hold up the ends of running jobs."""
        assert self.worker_id is not None
        self._claims_sent += 1
        return await self.app.connector.execute_query_all_async(
            CLAIM_JOBS,
            queues=None if self.queues is None else list(self.queues),
            worker_id=self.worker_id,
            n=n,
            claim=self._claims_sent,
            worker_name=self.worker_name,
        )

    def _start_job(self, row: dict[str, Any]) -> None:
        """Run a claimed job in a task of its own, as Procrastinate's fetch loop
        does; its context carries the run's timeout, read by the claim."""
        job = jobs.Job.from_row(row)
        job_id = job.id
        additional = dict(self.additional_context or {})
        additional[RUN_TIMEOUT] = row["timeout"]
        additional[HOLDS_SLOT] = True
        context = job_context.JobContext(
            app=self.app,
            worker_name=self.worker_name,
            worker_queues=self.queues,
            additional_context=additional,
            job=job,
            abort_reason=lambda: self._job_ids_to_abort.get(job_id) if job_id else None,
            start_timestamp=time.time(),
        )
        task = asyncio.create_task(
            self._process_job(context), name=f"process job {job.task_name}[{job_id}]"
        )
        self._running_jobs[task] = context
        task.add_done_callback(self._job_ended)

    def _job_ended(self, task: asyncio.Task[Any]) -> None:
        self._free_slot(self._running_jobs.pop(task))

    def _free_slot(self, context: job_context.JobContext) -> None:
        """Give back the slot ``context``'s job took, once."""
        if context.additional_context.pop(HOLDS_SLOT, False):
            self._job_semaphore.release()

    async def _persist_job_status(
        self,
        job: jobs.Job,
        status: jobs.Status,
        retry_decision: retry.RetryDecision | None,
        context: job_context.JobContext,
        job_result: job_context.JobResult | None,
    ) -> None:
        # The body has ended: its slot is free for the next claim while its end
        # is recorded (the job stays among the running ones until then, so a
        # stopping worker waits for the record).
        self._free_slot(context)
        await super()._persist_job_status(
            job, status, retry_decision, context, job_result
        )

    async def _execute_end(self, query: str, **params: Any) -> list[dict[str, Any]]:
        """Record jobs' ends on the run history's connection, waiting out a lost
        database: a job whose end is not recorded would stay ``doing`` under a
        live worker forever."""
        writer = self.history
        if writer is None:
            send = functools.partial(super()._execute_end, query, **params)
        else:
            send = functools.partial(writer.rows, query, **params)
        return await self.reached("finish_job", send)


@contextlib.contextmanager
def _setting(event: asyncio.Event) -> Iterator[None]:
    """Set ``event`` when the block ends, however it ends."""
    try:
        yield
    finally:
        event.set()


class AgntApp(deploy.ScheduledApp):
    """The App whose workers are ``AgntWorker``s (the stock CLI builds them too)."""

    def _worker(self, **kwargs: Any) -> worker.Worker:
        settings = get_settings()
        logs.configure_stock_cli(settings.log_level, settings.log_format)
        tracing.configure()
        return AgntWorker(
            app=self, **{**settings_defaults(), **self.worker_defaults, **kwargs}
        )


def settings_defaults() -> dict[str, Any]:
    """A worker's options from the settings, read when a worker is built; the
    App's own ``worker_defaults`` and the caller's options override them."""
    settings = get_settings()
    return {
        "concurrency": settings.worker_concurrency,
        "shutdown_graceful_timeout": settings.shutdown_graceful_timeout,
        # rescue_stalled_jobs and the start-up prune judge a worker dead on these.
        "update_heartbeat_interval": settings.worker_heartbeat_seconds,
        "stalled_worker_timeout": settings.stalled_worker_seconds,
    }
