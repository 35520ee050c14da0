"""The periodic deferrer: Procrastinate's, made to follow the ``schedules`` table as
it is now, to evaluate every schedule in its own zone, to apply its misfire policy
from the ticks persisted in the database, and to honour a pause.

Each pass reads the effective schedules with their last decided tick (one query),
plans with ``agnt_jobs.scheduler.misfire``, and decides each due tick with
``agnt_defer_schedule_tick`` (docs/schema.sql), which defers the job and
records the decision in one transaction under a per-schedule lock. However many
workers run, each tick is decided once; and a decision planned on values an
operator changed meanwhile is refused ('changed'), so the next decision after a
change is committed always follows it.

One pass per tick across a fleet: a worker whose timer woke it for a tick first
claims that tick's pass for the schedules it follows (``agnt_claim_schedule_pass``,
docs/schema.sql); the first to claim passes, every other goes back to sleep until
the next tick, so the work per tick does not grow with the number of workers
(30 workers making 30 passes a second fell behind on a 2-core machine). A claim
its worker left unfinished for ``PASS_STALE_SECONDS`` is taken over. Passes for
another reason (start, a NOTIFY, a backlog, the backstop, after an outage) are
made by every worker that wakes for them, unclaimed: the claim saves work, each
tick's decision stays once-only under its own lock whoever passes.

A change of the table NOTIFYs ``agnt_schedules`` (its trigger
``agnt_schedules_changed``); the worker's
listener wakes the deferrer, whose next pass follows the new values and writes
``next_run_at`` at once. A notification lost while the listener reconnects is
made up by the pass every ``BACKSTOP_SECONDS``.

A schedule whose job is not configured (a setting it needs is unset, see
``bodies.missing_settings``) has its due ticks decided skipped, reason
``not_configured``, by ``agnt_skip_schedule_tick``, under the same
lock: no job is deferred to fail. The worker says once, at start, which jobs wait
for which variables. Every worker should have the same settings: whichever decides
a tick decides it by its own.

Each schedule is decided on its own: one whose row no worker can follow
(``agnt_jobs.scheduler.broken``), or whose tick decision fails for a reason of its
own, is set aside and recorded in ``schedule_faults``, while every other one ticks
on. A schedule whose cron, zone or job changed starts from the change
(``cron_changed_at``, see ``misfire.plan``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from procrastinate.periodic import PeriodicDeferrer
from procrastinate.tasks import Task

from agnt_jobs import logs, tracing
from agnt_jobs.db.outage import Backoff, Outage, is_connection_lost
from agnt_jobs.models.scheduling import SkipReason, TickOutcome, Undecided
from agnt_jobs.scheduler import broken, misfire
from agnt_jobs.scheduler.bodies import missing_settings
from agnt_jobs.scheduler.declaration import Misfire, Schedule
from agnt_jobs.scheduler.deploy import (
    SQL,
    ScheduledApp,
    ZonedPeriodicTask,
    deployed,
)
from agnt_jobs.settings import Settings

logger = logging.getLogger(__name__)

#: The channel the schedules table's trigger notifies on every change.
CHANNEL = "agnt_schedules"
# While a catch-up tick waits for the previous run to start (the queueing lock),
# or a decision found the schedule changed, look again this soon.
BACKLOG_POLL_SECONDS = 0.5
# Pass at least this often: a change whose NOTIFY was lost (the listener was
# reconnecting), or a wall-clock change, is followed within this time.
BACKSTOP_SECONDS = 15.0
# Sleep this much past a tick. Procrastinate oversleeps by 0.5 s so as never to
# wake before a tick; waking early costs us only one empty pass (the tick is
# computed from the clock and the database, not from the wake-up), so ticks are
# deferred within tens of milliseconds.
WAKE_MARGIN_SECONDS = 0.05
# A pass another worker claimed and has not finished after this long is taken
# over (its worker died or lost the database mid-pass); a tick is then decided
# this much later, by its misfire policy.
PASS_STALE_SECONDS = 2.0


@dataclass(frozen=True)
class Followed:
    """One schedule as the table has it now, and the task of its job."""

    schedule: Schedule
    task: Task[..., Any, ...]

    @property
    def key(self) -> tuple[Any, ...]:
        s = self.schedule
        return (s.task_name, s.cron, s.zone, s.queue, s.misfire, s.timeout)


class ScheduleDeferrer(PeriodicDeferrer):
    def __init__(
        self,
        app: ScheduledApp,
        settings: Settings,
        worker_id: int | None,
        outage: Outage | None = None,
    ) -> None:
        super().__init__(
            registry=app.periodic_registry,
            max_delay=settings.schedule_misfire_tolerance_seconds,
        )
        self.app = app
        self.worker_id = worker_id
        self.outage = outage or Outage(settings.db_outage_report_seconds)
        self.backoff = Backoff(
            settings.db_retry_initial_seconds, settings.db_retry_max_seconds
        )
        self.tolerance = timedelta(seconds=settings.schedule_misfire_tolerance_seconds)
        self.grace = timedelta(seconds=settings.schedule_catch_up_grace_seconds)
        self.settings = settings
        self._next_runs: dict[str, datetime] = {}
        #: What the last pass followed, by schedule id.
        self.followed: dict[str, Followed] = {}
        self._following = False
        self._wake = asyncio.Event()
        # Rows this worker cannot follow, each said once: {id: the row's key}.
        self._refused: dict[str, tuple[Any, ...]] = {}
        # Faults found in this pass, to record: {id: reason}.
        self._faults: dict[str, str] = {}
        # What this worker recorded in schedule_faults: {id: reason}.
        self._recorded: dict[str, str] = {}
        self._judged = False
        #: What the schedules this worker follows are, for claiming passes.
        self.fingerprint = ""
        #: The tick instant the last sleep was aimed at (None: not a tick).
        self._toward: datetime | None = None

    @property
    def tasks(self) -> dict[str, Task[..., Any, ...]]:
        """The jobs this worker defers: every declared schedule's job with a body
        here. A schedule created in SQL runs one of them."""
        return {
            task.task.name: task.task
            for task in self.registry.periodic_tasks.values()
            if isinstance(task, ZonedPeriodicTask)
        }

    def wake(self) -> None:
        """Pass now: the schedules table changed (or may have)."""
        self._next_runs.clear()
        self._wake.set()

    async def on_notification(self, *, channel: str, payload: str) -> None:
        self.wake()

    async def worker(self) -> None:
        foreign = [
            task.periodic_id or task.task.name
            for task in self.registry.periodic_tasks.values()
            if not isinstance(task, ZonedPeriodicTask)
        ]
        if foreign:
            logger.warning(
                "periodic tasks registered with @app.periodic are ignored; declare "
                "them in periodic/: " + ", ".join(foreign),
                extra=logs.event("periodic_task_ignored", periodic_ids=foreign),
            )
        if not self.tasks:
            logger.info(
                "No schedule with a job body, the deferrer will not run.",
                extra=logs.event("periodic_deferrer_no_task"),
            )
            return
        self._say_which_jobs_wait_for_settings()
        recorded = False
        while True:
            now = time.time()
            toward = None if self._wake.is_set() else self._toward
            self._wake.clear()
            self._toward = None
            try:
                if not recorded:
                    await self.record_worker()
                    recorded = True
                delay = await self.pass_once(now, toward)
            except Exception as error:
                if not is_connection_lost(error):
                    raise
                # Ticks that fall due meanwhile are decided after the outage,
                # by their misfire policy, like ticks missed while no worker ran.
                self.outage.lost("deferrer", error)
                self.outage.check_limit()
                delay = self.backoff.delay()
            else:
                self.outage.back()
                self.backoff.reset()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def not_configured(self) -> dict[str, list[str]]:
        """Each job that waits for settings: the variables it waits for."""
        waiting = {name: missing_settings(name, self.settings) for name in self.tasks}
        return {name: missing for name, missing in waiting.items() if missing}

    def _say_which_jobs_wait_for_settings(self) -> None:
        by_variables: dict[tuple[str, ...], list[str]] = {}
        for schedule, missing in sorted(self.not_configured().items()):
            by_variables.setdefault(tuple(missing), []).append(schedule)
        if not by_variables:
            return
        # The message counts, to stay one readable line; the field names each job.
        waits = "; ".join(
            f"{len(schedules)} wait for {' and '.join(variables)}"
            for variables, schedules in by_variables.items()
        )
        logger.warning(
            f"jobs not configured, their ticks are skipped: {waits} "
            "('agnt-jobs schedules list' names them)",
            extra=logs.event(
                "jobs_not_configured",
                waiting={
                    " ".join(variables): schedules
                    for variables, schedules in by_variables.items()
                },
            ),
        )

    async def record_worker(self) -> None:
        if self.worker_id is None:
            return
        await self.app.connector.execute_query_async(
            SQL["record_worker"],
            worker_id=self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            deployed=deployed(self.app),
        )

    async def pass_once(self, now: float, toward: datetime | None) -> float:
        """Pass at ``now`` unless another worker has the pass of the tick at
        ``toward`` (the tick this worker's timer woke it for; None: pass
        anyway); the seconds to sleep after."""
        claimed = False
        if toward is not None and now < toward.timestamp():
            # Woken before the tick: a pass now would not decide it, and a
            # claim would tell the others it was.
            self._toward = toward
            return toward.timestamp() - now + WAKE_MARGIN_SECONDS
        if toward is not None and self.fingerprint:
            outcome = await self._claim(toward)
            if outcome != "claimed":
                return self._wait_after(now, toward, outcome)
            claimed = True
        backlog = await self.defer_due(now)
        if claimed:
            await self.app.connector.execute_query_async(
                SQL["finish_pass"],
                fingerprint=self.fingerprint,
                due_at=toward,
                worker_id=self.worker_id,
            )
        return self.next_wait(now, backlog)

    async def _claim(self, toward: datetime) -> str:
        row = await self.app.connector.execute_query_one_async(
            SQL["claim_pass"],
            fingerprint=self.fingerprint,
            due_at=toward,
            worker_id=self.worker_id,
            stale=PASS_STALE_SECONDS,
        )
        return str(row["outcome"])

    def _wait_after(self, now: float, toward: datetime, outcome: str) -> float:
        """Another worker has the pass of ``toward``: sleep to the next tick, or,
        while that pass runs, no longer than it may before it is taken over."""
        wait = self.next_wait(now, False)
        if outcome == "running" and wait > PASS_STALE_SECONDS:
            self._toward = toward
            return PASS_STALE_SECONDS
        return wait

    def next_wait(self, now: float, backlog: bool) -> float:
        """Seconds to sleep: just past the soonest tick, or the backlog poll. The
        soonest tick is remembered (``_toward``) when the sleep is aimed at it."""
        at = datetime.fromtimestamp(now, UTC)
        wait = BACKSTOP_SECONDS
        toward = None
        for followed in self.followed.values():
            with contextlib.suppress(Exception):  # set aside at the next pass
                soonest = followed.schedule.next_after(at)
                until = (soonest - at).total_seconds() + WAKE_MARGIN_SECONDS
                if until < wait or (until == wait and toward is not None):
                    wait, toward = until, soonest
        if backlog and wait > BACKLOG_POLL_SECONDS:
            wait, toward = BACKLOG_POLL_SECONDS, None
        self._toward = toward
        return max(0.0, min(wait, BACKSTOP_SECONDS))

    async def defer_due(self, now: float) -> bool:
        """One pass over every schedule at ``now`` (epoch seconds). True when some
        tick could not be decided yet and the pass should come back soon.

        A schedule whose row cannot be followed, or whose ticks fail to be decided
        for a reason of its own (anything but a lost connection), is set aside:
        it alone is skipped, the reason is logged once and recorded in
        ``schedule_faults``, and the next pass tries it again."""
        at = datetime.fromtimestamp(now, UTC)
        rows = await self.app.connector.execute_query_all_async(
            SQL["effective_schedules"], tasks=list(self.tasks)
        )
        self._follow(rows, at)
        last_ticks = {row["id"]: row["last_tick"] for row in rows}
        changed_at = {row["id"]: row["cron_changed_at"] for row in rows}
        not_configured = self.not_configured()
        backlog = False
        for id_, followed in list(self.followed.items()):
            try:
                backlog |= await self._decide(
                    followed,
                    last_ticks.get(id_),
                    changed_at.get(id_),
                    at,
                    followed.schedule.task_name in not_configured,
                )
            except Exception as error:
                if is_connection_lost(error):
                    raise
                self._refuse(
                    id_,
                    followed.key,
                    f"its ticks cannot be decided: {broken.one_line(error)}",
                )
        # What the pages show, not what decides ticks: a failure of these (a row
        # changed under them) waits for the next pass.
        for bookkeeping in (partial(self._update_next_runs, at), self._record_faults):
            try:
                await bookkeeping()
            except Exception as error:
                if is_connection_lost(error):
                    raise
                logger.warning(
                    f"deferrer bookkeeping failed, retried at the next pass: "
                    f"{broken.one_line(error)}",
                    extra=logs.event("schedule_bookkeeping_failed"),
                )
        return backlog

    async def _decide(
        self,
        followed: Followed,
        last_tick: datetime | None,
        changed_at: datetime | None,
        at: datetime,
        not_configured: bool,
    ) -> bool:
        """Decide the due ticks of one schedule; True if some must wait."""
        plan = misfire.plan(
            followed.schedule, last_tick, at, self.tolerance, self.grace, changed_at
        )
        if plan.missed and not await self._record_missed(followed, *plan.missed):
            # Another worker decided a tick after this pass read the last one:
            # the plan is stale, and the next pass (soon) plans from what is.
            return True
        if not_configured:
            for tick in plan.due:
                await self._skip_not_configured(followed, tick)
            return False
        backlog = len(plan.due) == misfire.MAX_DUE_PER_PASS
        schedule_id = followed.schedule.id
        for tick in plan.due:
            with tracing.span(
                f"tick {schedule_id}",
                {"agnt.schedule": schedule_id, "agnt.tick": int(tick.timestamp())},
            ) as traced:
                outcome = await self._defer_tick(followed, tick)
                traced.set_attribute("agnt.outcome", outcome)
            if outcome in (Undecided.HELD, Undecided.CHANGED):
                return True
        return backlog

    def _follow(self, rows: list[dict[str, Any]], at: datetime) -> None:
        """Follow the table's rows from now on; say once what changed, and set
        aside each row no worker can follow."""
        tasks = self.tasks
        followed: dict[str, Followed] = {}
        for row in rows:
            key = (
                row["task_name"],
                row["cron"],
                row["zone"],
                row["queue"],
                row["misfire_policy"],
                row["timeout"],
                row["problem"],
            )
            current = self.followed.get(row["id"])
            if current is not None and current.key == key[:-1] and not key[-1]:
                followed[row["id"]] = current
                continue
            try:
                schedule = broken.follow(row, at)
            except broken.Broken as error:
                self._refuse(row["id"], key, str(error))
                continue
            followed[row["id"]] = Followed(schedule, tasks[row["task_name"]])
        if self._following:
            self._say_changes(self.followed, followed)
        else:
            self._following = True
            logger.info(
                f"deferrer following {len(followed)} schedules",
                extra=logs.event(
                    "schedule_deferrer_following",
                    schedules=len(followed),
                    worker_id=self.worker_id,
                ),
            )
        self.followed = followed
        self.fingerprint = hashlib.sha256(
            repr(sorted((id_, f.key) for id_, f in followed.items())).encode()
        ).hexdigest()[:32]

    def _say_changes(
        self, before: dict[str, Followed], after: dict[str, Followed]
    ) -> None:
        for id_ in sorted(set(before) | set(after)):
            old, new = before.get(id_), after.get(id_)
            if old is not None and new is not None and old.key == new.key:
                continue
            if old is None and new is not None and self._refused.get(id_) == new.key:
                continue  # set aside again and again for the same reason
            if new is None:
                message = f"schedule {id_} is no longer followed (removed)"
                values: dict[str, Any] = {}
            else:
                s = new.schedule
                values = {
                    "task_name": s.task_name,
                    "cron": s.cron,
                    "zone": s.zone,
                    "queue": s.queue,
                    "misfire_policy": str(s.misfire),
                    "timeout_seconds": s.timeout.total_seconds(),
                }
                verb = "now follows" if old is not None else "added, follows"
                message = f"schedule {id_} {verb} cron {s.cron!r} in {s.zone}"
            logger.info(
                message,
                extra=logs.event(
                    "schedule_change_applied",
                    schedule=id_,
                    worker_id=self.worker_id,
                    **values,
                ),
            )

    def _refuse(self, id_: str, key: tuple[Any, ...], reason: str) -> None:
        """Set a schedule aside: it alone stops ticking. Said once per row
        version; recorded for the pages and checks at the end of the pass."""
        self.followed.pop(id_, None)
        if self._refused.get(id_) != key:
            self._refused[id_] = key
            self._recorded.pop(id_, None)  # a change of the row lifted its fault
            logger.error(
                f"schedule {id_} cannot be followed, its ticks are not decided: "
                f"{reason}",
                extra=logs.event("schedule_not_followed", schedule=id_, reason=reason),
            )
        if self._recorded.get(id_) != reason:
            self._faults[id_] = reason

    async def _record_faults(self) -> None:
        """Write the faults found in this pass, and lift those of schedules this
        worker follows again (all it follows, on its first pass)."""
        followed_again = [
            id_ for id_ in self.followed if not self._judged or id_ in self._recorded
        ]
        self._judged = True
        if followed_again:
            await self.app.connector.execute_query_async(
                SQL["followed_again"], ids=followed_again
            )
        for id_ in followed_again:
            self._refused.pop(id_, None)
            self._recorded.pop(id_, None)
        faults, self._faults = self._faults, {}
        for id_, reason in faults.items():
            await self.app.connector.execute_query_async(
                SQL["set_aside"],
                schedule_id=id_,
                reason=reason,
                worker_id=self.worker_id,
            )
            self._recorded[id_] = reason

    async def _defer_tick(self, followed: Followed, tick: datetime) -> str:
        schedule, task = followed.schedule, followed.task
        row = await self.app.connector.execute_query_one_async(
            SQL["defer_tick"],
            schedule_id=schedule.id,
            task_name=schedule.task_name,
            cron=schedule.cron,
            zone=schedule.zone,
            queue=schedule.queue,
            lock=task.lock,
            queueing_lock=task.queueing_lock,
            priority=task.priority,
            tick=int(tick.timestamp()),
            retry_when_queued=schedule.misfire is Misfire.CATCH_UP,
            worker_id=self.worker_id,
        )
        outcome: str = row["outcome"]
        reason, job_id = row["reason"], row["job_id"]
        tracing.annotate("agnt.job_id", job_id)
        extra = {
            "schedule": schedule.id,
            "tick": tick.isoformat(),
            "defer_timestamp": int(tick.timestamp()),
            "worker_id": self.worker_id,
        }
        if outcome == TickOutcome.DEFERRED:
            logger.info(
                f"Schedule {schedule.id} deferred job {job_id} for tick {tick}",
                extra=logs.event("periodic_task_deferred", job_id=job_id, **extra),
            )
        elif outcome == TickOutcome.SKIPPED:
            logger.info(
                f"Schedule {schedule.id} skipped tick {tick} ({reason})",
                extra=logs.event("schedule_tick_skipped", reason=reason, **extra),
            )
        else:
            logger.debug(
                f"Schedule {schedule.id} tick {tick}: {outcome}",
                extra=logs.event(f"schedule_tick_{outcome}", **extra),
            )
        return outcome

    async def _skip_not_configured(self, task: Followed, tick: datetime) -> None:
        row = await self.app.connector.execute_query_one_async(
            SQL["skip_tick"],
            schedule_id=task.schedule.id,
            tick=int(tick.timestamp()),
            reason=SkipReason.NOT_CONFIGURED,
            worker_id=self.worker_id,
        )
        if row["outcome"] == TickOutcome.SKIPPED:
            logger.info(
                f"Schedule {task.schedule.id} skipped tick {tick} (not_configured)",
                extra=logs.event(
                    "schedule_tick_skipped",
                    schedule=task.schedule.id,
                    tick=tick.isoformat(),
                    reason=SkipReason.NOT_CONFIGURED,
                ),
            )

    async def _record_missed(
        self, task: Followed, first: datetime, last: datetime
    ) -> bool:
        """Record the range; False when some tick of it was decided meanwhile."""
        row = await self.app.connector.execute_query_one_async(
            SQL["record_missed"],
            schedule_id=task.schedule.id,
            first=int(first.timestamp()),
            last=int(last.timestamp()),
            worker_id=self.worker_id,
        )
        if row["recorded"]:
            logger.warning(
                f"Schedule {task.schedule.id} missed its ticks from {first} to {last}",
                extra=logs.event(
                    "schedule_ticks_missed",
                    schedule=task.schedule.id,
                    missed_since=first.isoformat(),
                    missed_until=last.isoformat(),
                    policy=str(task.schedule.misfire),
                ),
            )
        return bool(row["recorded"])

    async def _update_next_runs(self, at: datetime) -> None:
        changed = {}
        for id_, followed in self.followed.items():
            try:
                next_run = followed.schedule.next_after(at)
            except Exception:  # set aside at the next pass
                continue
            if self._next_runs.get(id_) != next_run:
                changed[id_] = next_run
        if not changed:
            return
        await self.app.connector.execute_query_async(
            SQL["set_next_runs"], ids=list(changed), next_run_at=list(changed.values())
        )
        self._next_runs.update(changed)
