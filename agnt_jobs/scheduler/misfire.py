"""Misfire policy: given when a schedule's ticks were last decided and the time now,
which ticks to defer and which to record as missed.

Pure arithmetic on a ``Schedule``; the deferrer feeds it the last decided tick that
the database persisted, so a restarted worker neither loses nor repeats a tick, and
when the schedule's cron, zone or job last changed: a changed schedule starts from
its change, and the policy applies only to ticks missed since (or since the last
decided tick, whichever is later).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from agnt_jobs.scheduler.declaration import Misfire, Schedule

# Catch-up ticks go one at a time (at most one run of a job waits), so planning more
# than a few ahead is wasted work; the next pass plans the rest.
MAX_DUE_PER_PASS = 10
_EPSILON = timedelta(microseconds=1)


@dataclass(frozen=True)
class Plan:
    """``missed``: first and last tick of a range nobody will run (recorded as one
    skipped row). ``due``: ticks to defer now, oldest first."""

    missed: tuple[datetime, datetime] | None = None
    due: tuple[datetime, ...] = ()


def plan(
    schedule: Schedule,
    last: datetime | None,
    now: datetime,
    tolerance: timedelta,
    grace: timedelta,
    changed_at: datetime | None = None,
) -> Plan:
    """What to do with the ticks of ``schedule`` after ``last`` up to ``now``.

    A schedule never decided before (new, or a fresh database) owes nothing from
    the past: only its latest tick runs, if it is at most ``tolerance`` late.
    A schedule changed at ``changed_at`` owes nothing from before it: ticks of the
    new expression that fall before the change never run, nor are they recorded.
    """
    if changed_at is not None and (last is None or last < changed_at):
        last = changed_at - _EPSILON  # a tick at the change itself runs
    latest = schedule.latest_at(now)
    if last is not None and latest <= last:
        return Plan()
    if last is None:
        return Plan(due=(latest,)) if now - latest <= tolerance else Plan()

    first = schedule.next_after(last)
    if schedule.misfire is Misfire.SKIP:
        if now - latest > tolerance:
            return Plan(missed=(first, latest))
        if first < latest:
            before_latest = schedule.latest_at(latest - _EPSILON)
            return Plan(missed=(first, before_latest), due=(latest,))
        return Plan(due=(latest,))

    # catch_up: every tick inside the grace window, in order; older ones are missed.
    horizon = now - grace
    missed = None
    if first < horizon:
        newest_missed = schedule.latest_at(horizon - _EPSILON)
        missed = (first, newest_missed)
        last = newest_missed
    due = tuple(islice(schedule.ticks(last, now), MAX_DUE_PER_PASS))
    return Plan(missed=missed, due=due)
