"""The arbiter of fire times: a walk over real instants, minute by minute (second
by second for a six-field cron), that applies the documented time-zone rules
literally. Slow and simple on purpose; it shares only the field values with the
evaluator (``agnt_jobs.scheduler.cron``), not its arithmetic.

Rules (docs/schedules.md): an expression whose hour field starts with ``*`` or has
a step fires at each instant whose wall-clock time matches. Any other fires at
the first occurrence of each matching wall-clock time, and once at a forward jump
if a matching wall-clock time lies in what the jump skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from agnt_jobs.scheduler.cron import Cron


def matches(cron: Cron, wall: datetime) -> bool:
    day_of_month = wall.day in cron.days
    day_of_week = (wall.weekday() + 1) % 7 in cron.weekdays
    day = (
        (day_of_month or day_of_week) if cron.day_or else (day_of_month and day_of_week)
    )
    return (
        day
        and wall.month in cron.months
        and wall.hour in cron.hours
        and wall.minute in cron.minutes
        and wall.second in cron.seconds
    )


def _day_matches(cron: Cron, wall: datetime) -> bool:
    return matches(
        cron,
        wall.replace(
            hour=cron.hours[0], minute=cron.minutes[0], second=cron.seconds[0]
        ),
    )


def scan(cron: Cron, zone: tzinfo, after: datetime, count: int) -> list[datetime]:
    """The first ``count`` fires strictly after ``after``, in UTC."""
    step = timedelta(seconds=1) if cron.seconds != (0,) else timedelta(minutes=1)
    instant = after.astimezone(UTC).replace(microsecond=0)
    if step == timedelta(minutes=1):
        instant = instant.replace(second=0)
    instant += step
    fires: list[datetime] = []
    while len(fires) < count:
        local = instant.astimezone(zone)
        wall = local.replace(tzinfo=None, fold=0)
        before = (instant - step).astimezone(zone)
        jumped = local.utcoffset() != before.utcoffset() and (
            local.utcoffset() > before.utcoffset()  # type: ignore[operator]
        )
        fire = False
        if cron.by_elapsed_time:
            fire = matches(cron, wall)
        else:
            fire = matches(cron, wall) and local.fold == 0
            if jumped and not fire:
                skipped = before.replace(tzinfo=None) + step
                while skipped < wall and not fire:
                    fire = matches(cron, skipped)
                    skipped += step
        if fire:
            fires.append(instant)
            instant += step
            continue
        instant += _skip(cron, zone, instant, wall, step)
    return fires


def _skip(
    cron: Cron, zone: tzinfo, instant: datetime, wall: datetime, step: timedelta
) -> timedelta:
    """How far the walk may jump from a non-firing instant: to the next wall-clock
    hour or midnight when the day or the hour cannot match, provided the offset
    does not change on the way (a transition is walked step by step)."""
    if not _day_matches(cron, wall):
        ahead = (wall.replace(hour=0, minute=0, second=0) + timedelta(days=1)) - wall
    elif wall.hour not in cron.hours:
        ahead = (wall.replace(minute=0, second=0) + timedelta(hours=1)) - wall
    else:
        return step
    ahead = min(ahead, timedelta(hours=1))
    offset = instant.astimezone(zone).utcoffset()
    if ahead <= step or (instant + ahead).astimezone(zone).utcoffset() != offset:
        return step
    return ahead
