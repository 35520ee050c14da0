"""How a worker stops, so that a job never runs on two workers at once.

- **Alive until done.** A stopping worker keeps its heartbeat (and its fence, below)
  until its last job has ended and its end is recorded; only then does it leave
  the workers table. No shutdown opens a gap the rescue could read as death.
- **The grace period is a bound.** ``shutdown_graceful_timeout`` after the first
  SIGTERM/SIGINT, each job still running is asked to stop at its next checkpoint
  and its current statement is cancelled on its own connection
  (``agnt_jobs.db.inflight``), again every half second until it ends; an async body
  is cancelled. Such a run is recorded ``stopped`` and goes back to the queue due
  now, and the listening workers are woken. A body that honours neither within
  ``STOP_SECONDS`` is put back by the worker itself (due ``FENCE_SECONDS`` later:
  the process is gone by then) and the process exits 0 at once. Either way it
  exits within the grace plus ``STOP_SECONDS`` plus a second.
- **A second signal means now.** The same, with ``NOW_SECONDS`` instead, one log
  line, and exit status 1.
- **The fence.** A worker whose heartbeat has not reached the database for
  ``stalled_worker_timeout`` minus two heartbeats stops its running jobs the same
  way; at minus one heartbeat, if any still runs, it exits with status 1. The
  rescue retries a job only once its worker's heartbeat is ``stalled_worker_timeout``
  old (``agnt_jobs.scheduler.maintenance``), measured by the database from the
  worker's last heartbeat, which the worker's own clock measures from when it
  sent it: by then the worker has stopped its jobs or is gone.
- **A late end records nothing.** A worker records a job's end only while the job
  is still its own (``db/sql/worker.sql``), so an end that comes after the rescue
  took the job does not overwrite the rescue's decision or another worker's claim.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from procrastinate import job_context, jobs, retry, utils, worker

from agnt_jobs import logs
from agnt_jobs.db import inflight, queries
from agnt_jobs.scheduler import history

logger = logging.getLogger(__name__)

SQL = queries.load("worker.sql")

# Past the grace, how long running jobs get to stop at a checkpoint or after
# their statement is cancelled; after a second signal, how long they get.
STOP_SECONDS = 3.0
NOW_SECONDS = 1.0
# How often a stopping worker repeats the cancel of a run's statement (a body
# may catch the error and start another).
CANCEL_EVERY_SECONDS = 0.5
# A job the worker puts back itself (its body honoured no stop) is due this much
# later: the process exits right after, so the body cannot overlap its retry.
FENCE_SECONDS = 2.0
# How long the records of the end (history, requeue, leaving the workers table)
# may take once the jobs have been stopped.
RECORD_SECONDS = 0.8
# The worker's tasks that last until its jobs have ended.
HEARTBEAT_TASK = "heartbeat"
FENCE_TASK = "fence"


class StoppingWorker(worker.Worker):
    """Procrastinate's worker with a shutdown that bounds every job (above)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stop_requested_at: float | None = None
        self._now_requested = False
        self._signal_handlers: list[int] = []
        # When the last heartbeat that reached the database was sent.
        self._last_beat = time.monotonic()
        self._fenced = False
        # Set when the process must end at once after run(): a job's thread
        # is still running, or a second signal asked for it.
        self._exit_status: int | None = None
        self._finishing = Batches(self._finish_own_jobs)

    # --- signals ------------------------------------------------------------

    def stop(self) -> None:
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
            self._listen_for_second_signal()
        # Procrastinate's Worker.stop has no annotations.
        super().stop()  # type: ignore[no-untyped-call]

    def _listen_for_second_signal(self) -> None:
        """After the first stop, SIGTERM and SIGINT mean "now". Procrastinate
        restores the previous handlers on the first signal (a second SIGTERM then
        killed the process with no record, a second SIGINT did nothing)."""
        loop = self._loop
        if (
            not self.install_signal_handlers
            or loop is None
            or threading.current_thread() is not threading.main_thread()
        ):
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop_now, signum)
            self._signal_handlers.append(signum)

    def _forget_signal_handlers(self) -> None:
        loop = self._loop
        for signum in self._signal_handlers:
            if loop is not None:
                loop.remove_signal_handler(signum)
        self._signal_handlers.clear()

    def stop_now(self, signum: int = signal.SIGTERM) -> None:
        """Stop the running jobs now, put them back, exit with status 1."""
        if self._now_requested:
            return
        self._now_requested = True
        self._exit_status = 1
        name = signal.Signals(signum).name
        running = len(self._running_jobs)
        logger.warning(
            f"second {name}: cancelling {running} running job(s), putting them "
            "back in the queue and exiting with status 1",
            extra=logs.event("worker_stop_now", signal=name, running=running),
        )
        self.stop()

    # --- shutdown -------------------------------------------------------------

    async def _shutdown(self, side_tasks: list[asyncio.Task[Any]]) -> None:
        lasting = [
            task
            for task in side_tasks
            if task.get_name() in (HEARTBEAT_TASK, FENCE_TASK)
        ]
        await utils.cancel_and_capture_errors(
            [task for task in side_tasks if task not in lasting]
        )
        try:
            await self._let_jobs_end()
        finally:
            await utils.cancel_and_capture_errors(lasting)
            self._forget_signal_handlers()
        assert self.worker_id is not None
        try:
            await asyncio.wait_for(
                self.app.job_manager.unregister_worker(self.worker_id),
                self._record_timeout(),
            )
        except Exception as error:
            if self._exit_status is None:
                raise
            # Exiting at once anyway: the row goes with the next start's prune.
            logger.debug("could not unregister: %r", error)
        self.worker_id = None
        logger.info(
            f"Stopped worker on {utils.queues_display(self.queues)}",
            extra=logs.event("stop_worker", queues=list(self.queues or [])),
        )

    def _record_timeout(self) -> float | None:
        return RECORD_SECONDS if self._exit_status is not None else None

    async def _let_jobs_end(self) -> None:
        if not self._running_jobs:
            return
        for context in self._running_jobs.values():
            logger.info(
                f"Waiting for job to finish: {context.job.call_string}",
                extra=logs.event("ending_job", job_id=context.job.id),
            )
        grace = self.shutdown_graceful_timeout
        started = self._stop_requested_at or time.monotonic()
        graceful_end = None if grace is None else started + grace
        while self._running_jobs and not self._now_requested:
            if graceful_end is not None and time.monotonic() >= graceful_end:
                break
            await asyncio.wait(list(self._running_jobs), timeout=0.2)
        if not self._running_jobs:
            return
        if not self._now_requested:
            logger.warning(
                f"{len(self._running_jobs)} job(s) still running after the graceful "
                f"timeout ({grace:g} s): stopping them and putting them back",
                extra=logs.event(
                    "worker_graceful_timeout", running=len(self._running_jobs)
                ),
            )
        await self.stop_running_jobs(
            NOW_SECONDS if self._now_requested else STOP_SECONDS
        )

    async def stop_running_jobs(self, within: float) -> None:
        """Ask every running job to stop, cancelling its statements until it ends,
        for at most ``within`` seconds (less if a second signal comes); then put
        back the jobs whose body is still running, and have the process exit
        once the worker has stopped."""
        deadline = time.monotonic() + within
        for task, context in list(self._running_jobs.items()):
            self._abort_job(task, context, job_context.AbortReason.SHUTDOWN)
        while self._running_jobs:
            if self._now_requested:
                deadline = min(deadline, time.monotonic() + NOW_SECONDS)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cancel_statements()
            await asyncio.wait(
                list(self._running_jobs), timeout=min(left, CANCEL_EVERY_SECONDS)
            )
        if self._running_jobs:
            await self._put_back_abandoned()

    def _cancel_statements(self) -> None:
        """Cancel what each running job executes, from a thread of its own: the
        executor's threads may all be busy with the very jobs being stopped, and
        a cancel request to an unreachable server must not hold the loop."""
        for context in self._running_jobs.values():
            if context.job.id is not None and inflight.connections(context.job.id):
                threading.Thread(
                    target=inflight.cancel,
                    args=(context.job.id,),
                    name="agnt-cancel",
                    daemon=True,
                ).start()

    async def _put_back_abandoned(self) -> None:
        """Record as stopped and put back each job whose body did not stop: its
        thread cannot be ended, so the process exits (0 after the grace, 1 after a
        second signal) as soon as the worker has stopped."""
        if self._exit_status is None:
            self._exit_status = 0
        retry_at = datetime.now(UTC) + timedelta(seconds=FENCE_SECONDS)
        for context in list(self._running_jobs.values()):
            job = context.job
            logger.warning(
                f"job {job.id} ({job.task_name}) did not stop: put back, due in "
                f"{FENCE_SECONDS:g} s, and the worker exits now",
                extra=logs.event(
                    "job_abandoned", job_id=job.id, task_name=job.task_name
                ),
            )
            try:
                await asyncio.wait_for(self._put_back(job, retry_at), RECORD_SECONDS)
            except Exception as error:
                # Left 'doing': the rescue retries it once this worker is gone.
                logger.warning(
                    f"job {job.id} could not be put back ({error!r}); the rescue "
                    "will retry it",
                    extra=logs.event("job_not_put_back", job_id=job.id),
                )

    async def _put_back(self, job: jobs.Job, retry_at: datetime) -> None:
        await self.app.connector.execute_query_async(
            history.FINISH_RUN,
            job_id=job.id,
            attempt=job.attempts + 1,
            status="stopped",
            result=None,
            error=f"RunStopped: the body did not stop within {STOP_SECONDS:g} s "
            "of the graceful timeout; put back by its worker",
        )
        await self._end_own_job(
            job, "retry", retry_at=retry_at, priority=None, queue=None, lock=None
        )

    def exit_status(self) -> int | None:
        """The status the process must exit with at once (a job's thread still
        runs, or a second signal), or None for an ordinary return."""
        return self._exit_status

    # --- the fence --------------------------------------------------------------

    def heartbeat_reached(self, sent_at: float) -> None:
        """A heartbeat sent at ``sent_at`` (monotonic) reached the database."""
        self._last_beat = max(self._last_beat, sent_at)

    def _silent_for(self) -> float:
        return time.monotonic() - self._last_beat

    def fenced(self) -> bool:
        """True while this worker's heartbeats fail for so long that it must stop
        its jobs; it takes no new one then."""
        beat, stalled = self.update_heartbeat_interval, self.stalled_worker_timeout
        return self._silent_for() >= stalled - 2 * beat

    async def _fence(self) -> None:
        """Stop the running jobs of a worker whose heartbeats no longer reach the
        database before the rescue may judge it dead; exit if they do not stop."""
        beat, stalled = self.update_heartbeat_interval, self.stalled_worker_timeout
        exit_after = stalled - beat
        while True:
            await asyncio.sleep(min(1.0, beat / 2))
            silent = self._silent_for()
            if not self.fenced():
                self._fenced = False
                continue
            if not self._running_jobs:
                continue
            running = len(self._running_jobs)
            if silent >= exit_after:
                logger.error(
                    f"no heartbeat reached the database for {silent:.0f} s and "
                    f"{running} job(s) still run: exiting with status 1 before "
                    "other workers judge this one dead and retry them",
                    extra=logs.event("worker_fenced_exit", running=running),
                )
                self.exit_process(1)
            if not self._fenced:
                self._fenced = True
                logger.warning(
                    f"no heartbeat reached the database for {silent:.0f} s: stopping "
                    f"{running} running job(s) before other workers judge this one "
                    "dead",
                    extra=logs.event("worker_fenced", running=running),
                )
                for task, context in list(self._running_jobs.items()):
                    self._abort_job(task, context, job_context.AbortReason.SHUTDOWN)
            self._cancel_statements()

    def exit_process(self, status: int) -> None:
        """End the process now: the log lines written, nothing else waited for
        (a job's thread cannot be stopped any other way)."""
        logging.shutdown()
        os._exit(status)

    # --- a job's end, recorded only while the job is ours ------------------------

    #: ``record_run`` leaves each run's end to this worker, which records it with
    #: the job's end (``history.RUN_END``).
    records_run_ends = True

    async def _persist_job_status(
        self,
        job: jobs.Job,
        status: jobs.Status,
        retry_decision: retry.RetryDecision | None,
        context: job_context.JobContext,
        job_result: job_context.JobResult | None,
    ) -> None:
        run_end: history.RunEnd | None = context.additional_context.pop(
            history.RUN_END, None
        )
        stopped = (
            status == jobs.Status.ABORTED
            and context.abort_reason() == job_context.AbortReason.SHUTDOWN
        )
        if (stopped or retry_decision is not None) and run_end is not None:
            await history.record_end(
                self._execute_end,
                {"job_id": job.id, "attempt": job.attempts + 1},
                run_end,
            )
        if stopped:
            # Stopped by this worker (a sync body at a checkpoint or through its
            # cancelled statement, an async one cancelled): not the job's failure,
            # so it goes back due now, whatever its retry strategy, for another
            # worker to take at once.
            ours = await self._end_own_job(
                job,
                "retry",
                retry_at=datetime.now(UTC),
                priority=None,
                queue=None,
                lock=None,
            )
        elif retry_decision is not None:
            ours = await self._end_own_job(
                job,
                "retry",
                retry_at=retry_decision.retry_at,
                priority=retry_decision.priority,
                queue=retry_decision.queue,
                lock=retry_decision.lock,
            )
        else:
            delete = {
                jobs.DeleteJobCondition.ALWAYS: True,
                jobs.DeleteJobCondition.NEVER: False,
                jobs.DeleteJobCondition.SUCCESSFUL: status == jobs.Status.SUCCEEDED,
            }[self.delete_jobs]
            ours = await self._finishing.end(
                {
                    "job_id": job.id,
                    "status": status.value,
                    "delete_job": delete,
                    "attempt": job.attempts + 1,
                    **(
                        {}
                        if run_end is None
                        else {
                            "run_status": run_end.status,
                            "result": run_end.result,
                            "error": run_end.error,
                        }
                    ),
                }
            )
        assert job.id is not None
        self._job_ids_to_abort.pop(job.id, None)
        if job.lock is not None:
            # Its lock is free: this worker looks for a job waiting on it now, as
            # the workers the end's notification wakes do (a worker that does not
            # listen would otherwise wait for its next poll).
            self._new_job_event.set()
        if not ours:
            logger.warning(
                f"job {job.id} ({job.task_name}) was taken from this worker before "
                "its end was recorded (the rescue judged its heartbeat lost): its "
                "end is not recorded",
                extra=logs.event("job_end_not_ours", job_id=job.id),
            )

    async def _execute_end(self, query: str, **params: Any) -> list[dict[str, Any]]:
        """Where the statements recording jobs' ends go (an ``AgntWorker`` waits
        out a lost database there)."""
        return await self.app.connector.execute_query_all_async(query, **params)

    async def _end_own_job(self, job: jobs.Job, how: str, **params: Any) -> bool:
        """``retry`` ``job`` if it is still this worker's."""
        rows = await self._execute_end(
            SQL[f"{how}_own_job"],
            job_id=job.id,
            worker_id=self.worker_id,
            **params,
        )
        return bool(rows)

    async def _finish_own_jobs(self, ends: list[dict[str, Any]]) -> set[int]:
        """Finish the jobs of ``ends`` that are still this worker's, and close
        their runs, in one statement; the ids of the jobs finished."""
        rows = await self._execute_end(
            SQL["finish_own_jobs"], ends=json.dumps(ends), worker_id=self.worker_id
        )
        return {row["id"] for row in rows}


class Batches:
    """Jobs' ends recorded together: an end waits while the statement before it is
    on its way, and goes with every end that came meanwhile (one statement at a
    time, none delayed beyond that). ``end`` returns once its job's end is
    recorded (True: the job was still the worker's) or raises what the statement
    raised, so a worker that waits for its jobs waits for their records."""

    def __init__(
        self, send: Callable[[list[dict[str, Any]]], Awaitable[set[int]]]
    ) -> None:
        self._send = send
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._sending: asyncio.Task[None] | None = None

    async def end(self, end: dict[str, Any]) -> bool:
        recorded: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((end, recorded))
        if self._sending is None:
            self._sending = asyncio.create_task(self._send_all(), name="job ends")
        return await recorded

    async def _send_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    ended = await self._send([end for end, _ in batch])
                except BaseException as error:
                    for _, recorded in batch:
                        if not recorded.done():
                            recorded.set_exception(error)
                    if not isinstance(error, Exception):
                        raise
                    continue
                for end, recorded in batch:
                    if not recorded.done():
                        recorded.set_result(end["job_id"] in ended)
        finally:
            self._sending = None
