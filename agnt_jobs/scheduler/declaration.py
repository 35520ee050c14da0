"""What a schedule declaration is, and the time arithmetic on it.

A ``Schedule`` says when a job runs: a cron expression read as wall-clock time in its
own zone (Asia/Makassar for every AGNT job), never in UTC, so "Mon 04:00" stays a
Monday in WITA even though it is Sunday 20:00 UTC. ``periodic/`` holds the
declarations; ``agnt_jobs.scheduler.deploy`` turns them into Procrastinate
periodic tasks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agnt_jobs.errors import Invalid
from agnt_jobs.scheduler.cron import Cron, CronError, parse

WITA = "Asia/Makassar"
DEFAULT_QUEUE = "default"
# How long a run may take before it is stopped at its next checkpoint, unless the
# declaration (or an operator) says otherwise.
DEFAULT_TIMEOUT = timedelta(minutes=30)
# The bounds of a timeout, as Postgres holds them (agnt_timeout_problem): a run stopped
# before a second is a typo, a run allowed past a week is one nobody watches.
TIMEOUT_FLOOR = timedelta(seconds=1)
TIMEOUT_CEILING = timedelta(days=7)

# Procrastinate stores task names, periodic ids and locks in varchar(128).
_ID = re.compile(r"^[a-z][a-z0-9_]{0,127}$")


class Misfire(StrEnum):
    """What a worker does with ticks that passed while no worker was deferring.

    ``skip``: only the latest tick runs, and only if it is at most the misfire
    tolerance late; older ticks are recorded as missed. Right for jobs that sweep
    current state, where the next run does what a missed one would have.

    ``catch_up``: every missed tick younger than the catch-up grace window runs, in
    order, one at a time; older ones are recorded as missed. Right for jobs whose
    tick names a period of work (a day's digest, a month's invoice).
    """

    SKIP = "skip"
    CATCH_UP = "catch_up"


class ScheduleError(Invalid, ValueError):
    """A declaration is malformed; the message names the schedule and the field."""


@dataclass(frozen=True)
class Schedule:
    """One job's trigger. A declared schedule's ``id`` is also its job: the task
    name, the lock and the queueing lock. A schedule an operator created in SQL has
    an id of its own and runs the job ``task_name``."""

    id: str
    cron: str
    description: str
    misfire: Misfire = Misfire.SKIP
    queue: str = DEFAULT_QUEUE
    zone: str = WITA
    timeout: timedelta = DEFAULT_TIMEOUT
    task_name: str = ""

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ScheduleError(
                f"schedule id {self.id!r} must be lower-case letters, digits and "
                "underscores, starting with a letter, at most 128 characters"
            )
        try:
            parse(self.cron)
        except CronError as error:
            raise ScheduleError(
                f"schedule {self.id}: invalid cron {self.cron!r}: {error}"
            ) from None
        try:
            ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(
                f"schedule {self.id}: unknown time zone {self.zone!r}"
            ) from None
        if not self.queue:
            raise ScheduleError(f"schedule {self.id}: empty queue name")
        if not (
            isinstance(self.timeout, timedelta)
            and TIMEOUT_FLOOR <= self.timeout <= TIMEOUT_CEILING
        ):
            raise ScheduleError(
                f"schedule {self.id}: timeout {self.timeout} is outside 1 second "
                "to 7 days"
            )
        try:
            object.__setattr__(self, "misfire", Misfire(self.misfire))
        except ValueError:
            raise ScheduleError(
                f"schedule {self.id}: unknown misfire policy {self.misfire!r}"
            ) from None
        object.__setattr__(self, "task_name", self.task_name or self.id)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Schedule:
        """The schedule a ``schedules`` row says is in effect now (ScheduleError if
        this Python cannot evaluate it)."""
        return cls(
            id=row["id"],
            cron=row["cron"],
            description=row.get("description") or "",
            misfire=Misfire(row["misfire_policy"]),
            queue=row["queue"],
            zone=row["zone"],
            timeout=row["timeout"],
            task_name=row["task_name"],
        )

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @cached_property
    def parsed(self) -> Cron:
        return parse(self.cron)

    # Ticks carry the zone's UTC offset at their instant (a fixed offset), so that
    # they compare and subtract as instants, inside a repeated hour too. The time
    # zone rules are ``agnt_jobs.scheduler.cron``'s (docs/schedules.md).

    def next_after(self, when: datetime) -> datetime:
        """The first tick strictly after ``when`` (an aware datetime). The last
        answer is kept: for every instant from the one it was asked for up to
        (not including) the tick it gave, the answer is that tick, so a deferrer
        that asks at every wake computes a tick once per tick, not once per wake
        of every worker of a fleet."""
        last: tuple[datetime, datetime] | None = self.__dict__.get("_next_after")
        if last is not None and last[0] <= when < last[1]:
            return last[1]
        tick = self.parsed.next_after(when, self.tz)
        self.__dict__["_next_after"] = (when, tick)
        return tick

    def latest_at(self, when: datetime) -> datetime:
        """The last tick at or before ``when``."""
        return self.parsed.latest_at(when, self.tz)

    def ticks(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Every tick in ``(after, until]``, oldest first, lazily."""
        for tick in self.parsed.fires(after, self.tz):
            if tick > until:
                return
            yield tick

    def signature(self) -> dict[str, str]:
        """What a deployment must agree on for this schedule to behave the same."""
        return {
            "cron": self.cron,
            "zone": self.zone,
            "queue": self.queue,
            "misfire": str(self.misfire),
            "timeout": str(int(self.timeout.total_seconds())),
        }
