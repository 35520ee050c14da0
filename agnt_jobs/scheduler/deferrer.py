"""The periodic deferrer: Procrastinate's, made to evaluate every schedule in its own
zone, to apply its misfire policy from the ticks persisted in the database, and to
honour a pause.

Each pass reads the last decided tick of every schedule, plans with
``agnt_jobs.scheduler.misfire``, and decides each due tick with
``agnt_defer_schedule_tick``
(migration 0007), which defers the job and records the decision in one transaction
under a per-schedule lock. However many workers run, each tick is decided once.

A schedule whose job is not configured (a setting it needs is unset, see
``bodies.missing_settings``) has its due ticks decided skipped, reason
``not_configured``, by ``agnt_skip_schedule_tick`` (migration 0012), under the same
lock: no job is deferred to fail. The worker says once, at start, which jobs wait
for which variables. Every worker should have the same settings: whichever decides
a tick decides it by its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta

from procrastinate.periodic import PeriodicDeferrer

from agnt_jobs import logs
from agnt_jobs.db.outage import Backoff, Outage, is_connection_lost
from agnt_jobs.scheduler import misfire
from agnt_jobs.scheduler.bodies import missing_settings
from agnt_jobs.scheduler.declaration import Misfire
from agnt_jobs.scheduler.registry import (
    SQL,
    ScheduledApp,
    ZonedPeriodicTask,
    deployed,
)
from agnt_jobs.settings import Settings

logger = logging.getLogger(__name__)

# While a catch-up tick waits for the previous run to start (the queueing lock),
# look again this soon rather than at the next tick.
BACKLOG_POLL_SECONDS = 0.5
# Wake at least this often, so a wall-clock change is noticed within a minute.
MAX_SLEEP_SECONDS = 60.0
# Sleep this much past a tick. Procrastinate oversleeps by 0.5 s so as never to
# wake before a tick; waking early costs us only one empty pass (the tick is
# computed from the clock and the database, not from the wake-up), so ticks are
# deferred within tens of milliseconds.
WAKE_MARGIN_SECONDS = 0.05


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

    @property
    def periodic_tasks(self) -> list[ZonedPeriodicTask]:
        return [
            task
            for task in self.registry.periodic_tasks.values()
            if isinstance(task, ZonedPeriodicTask)
        ]

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
        if not self.periodic_tasks:
            logger.info(
                "No schedule with a job body, the deferrer will not run.",
                extra=logs.event("periodic_deferrer_no_task"),
            )
            return
        self._say_which_jobs_wait_for_settings()
        recorded = False
        while True:
            now = time.time()
            try:
                if not recorded:
                    await self.record_worker()
                    recorded = True
                backlog = await self.defer_due(now)
                delay = self.next_wait(now, backlog)
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
            await asyncio.sleep(delay)

    def not_configured(self) -> dict[str, list[str]]:
        """Each schedule whose job waits for settings: the variables it waits for."""
        waiting = {
            task.schedule.id: missing_settings(task.task.name, self.settings)
            for task in self.periodic_tasks
        }
        return {schedule: missing for schedule, missing in waiting.items() if missing}

    def _say_which_jobs_wait_for_settings(self) -> None:
        by_variables: dict[tuple[str, ...], list[str]] = {}
        for schedule, missing in sorted(self.not_configured().items()):
            by_variables.setdefault(tuple(missing), []).append(schedule)
        if not by_variables:
            return
        waits = "; ".join(
            f"{', '.join(schedules)} wait for {' and '.join(variables)}"
            for variables, schedules in by_variables.items()
        )
        logger.warning(
            f"jobs not configured, their ticks are skipped: {waits}",
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

    def next_wait(self, now: float, backlog: bool) -> float:
        """Seconds to sleep: just past the soonest tick, or the backlog poll."""
        at = datetime.fromtimestamp(now, UTC)
        soonest = min(task.schedule.next_after(at) for task in self.periodic_tasks)
        wait = (soonest - at).total_seconds() + WAKE_MARGIN_SECONDS
        if backlog:
            wait = min(wait, BACKLOG_POLL_SECONDS)
        return max(0.0, min(wait, MAX_SLEEP_SECONDS))

    async def defer_due(self, now: float) -> bool:
        """One pass over every schedule at ``now`` (epoch seconds). True when some
        catch-up tick could not be deferred yet and the pass should come back soon."""
        at = datetime.fromtimestamp(now, UTC)
        tasks = self.periodic_tasks
        rows = await self.app.connector.execute_query_all_async(
            SQL["last_ticks"], ids=[task.periodic_id for task in tasks]
        )
        last_ticks = {row["id"]: row["last_tick"] for row in rows}
        not_configured = self.not_configured()
        backlog = False
        for task in tasks:
            plan = misfire.plan(
                task.schedule,
                last_ticks.get(task.periodic_id),
                at,
                self.tolerance,
                self.grace,
            )
            if plan.missed:
                await self._record_missed(task, *plan.missed)
            if task.schedule.id in not_configured:
                for tick in plan.due:
                    await self._skip_not_configured(task, tick)
                continue
            if len(plan.due) == misfire.MAX_DUE_PER_PASS:
                backlog = True
            for tick in plan.due:
                if await self._defer_tick(task, tick) == "queued":
                    backlog = True
                    break
        await self._update_next_runs(at)
        return backlog

    async def _defer_tick(self, task: ZonedPeriodicTask, tick: datetime) -> str:
        schedule = task.schedule
        row = await self.app.connector.execute_query_one_async(
            SQL["defer_tick"],
            schedule_id=schedule.id,
            queue=task.task.queue,
            lock=task.task.lock,
            queueing_lock=task.task.queueing_lock,
            priority=task.task.priority,
            tick=int(tick.timestamp()),
            retry_when_queued=schedule.misfire is Misfire.CATCH_UP,
            worker_id=self.worker_id,
        )
        outcome, job_id = row["outcome"], row["job_id"]
        extra = {
            "schedule": schedule.id,
            "tick": tick.isoformat(),
            "defer_timestamp": int(tick.timestamp()),
            "worker_id": self.worker_id,
        }
        if outcome == "deferred":
            logger.info(
                f"Schedule {schedule.id} deferred job {job_id} for tick {tick}",
                extra=logs.event("periodic_task_deferred", job_id=job_id, **extra),
            )
        elif outcome in ("paused", "skipped"):
            reason = "paused" if outcome == "paused" else "queued"
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

    async def _skip_not_configured(
        self, task: ZonedPeriodicTask, tick: datetime
    ) -> None:
        row = await self.app.connector.execute_query_one_async(
            SQL["skip_tick"],
            schedule_id=task.schedule.id,
            tick=int(tick.timestamp()),
            reason="not_configured",
            worker_id=self.worker_id,
        )
        if row["outcome"] == "skipped":
            logger.info(
                f"Schedule {task.schedule.id} skipped tick {tick} (not_configured)",
                extra=logs.event(
                    "schedule_tick_skipped",
                    schedule=task.schedule.id,
                    tick=tick.isoformat(),
                    reason="not_configured",
                ),
            )

    async def _record_missed(
        self, task: ZonedPeriodicTask, first: datetime, last: datetime
    ) -> None:
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

    async def _update_next_runs(self, at: datetime) -> None:
        changed = {}
        for task in self.periodic_tasks:
            next_run = task.schedule.next_after(at)
            if self._next_runs.get(task.schedule.id) != next_run:
                changed[task.schedule.id] = next_run
        if not changed:
            return
        await self.app.connector.execute_query_async(
            SQL["set_next_runs"], ids=list(changed), next_run_at=list(changed.values())
        )
        self._next_runs.update(changed)
