"""The one cron grammar and the one evaluator of fire times.

``parse`` reads an expression or raises ``CronError`` with one line that says what
to write instead; ``Cron.next_after`` and ``Cron.latest_at`` give fire times in a
zone. Postgres checks the same grammar (``agnt_cron_problem``, the migration that
redefines it), and ``tests/integration/test_cron_grammar.py`` holds the two equal.

The grammar is Vixie cron's (as cronie reads it): five fields, minute hour
day-of-month month day-of-week, each a comma list of ``*``, ``n`` or ``a-b``, where
``*`` and ``a-b`` may carry a ``/step``; month and weekday names (``jan``, ``mon``,
any case); 0 and 7 are Sunday; ``a-a`` is the single value ``a``. Day-of-month and
day-of-week are OR-ed only when both are restricted: when either starts with ``*``
(``*/2`` too), a day must match both. A sixth field, seconds, comes last; it is for
tests and benchmarks. Refused: ``L``, ``W``, ``#``, ``?``, ``@daily``-style macros,
a step on a single value (``5/10``), backward ranges, numbers of more than two
digits, and expressions that can never fire (``0 0 30 2 *``).

Time zones (docs/schedules.md has the table): an expression whose hour field starts
with ``*`` or has a step fires at every instant whose wall-clock time matches, so
across a transition it keeps firing by elapsed time (a time that does not happen
does not fire, one that happens twice fires twice). Every other expression names
wall-clock times: one that a forward jump skips fires once, at the jump; one that
happens twice fires once, at its first occurrence.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache

from agnt_jobs.errors import Invalid

__all__ = ["Cron", "CronError", "parse"]


class CronError(Invalid, ValueError):
    """An expression outside the grammar, or one that never fires; the message is
    one line that says what to write."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()


_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field(
    "month",
    1,
    12,
    (
        "jan",
        "feb",
        "mar",
        "apr",
        "may",
        "jun",
        "jul",
        "aug",
        "sep",
        "oct",
        "nov",
        "dec",
    ),
)
_DOW = _Field("day-of-week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
_SECOND = _Field("second", 0, 59)
_FIELDS = (_MINUTE, _HOUR, _DOM, _MONTH, _DOW, _SECOND)

_EXAMPLE = (
    "write 5 fields, minute hour day-of-month month day-of-week, e.g. '*/5 * * * *'"
)
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Fields are separated by spaces and tabs only; each is ASCII letters, digits and
# * , - / (anything else, e.g. a non-ASCII digit, is refused before it is read).
_SEPARATOR = re.compile(r"[ \t]+")
_BAD_CHARACTER = re.compile(r"[^0-9A-Za-z*,/-]", re.ASCII)
_ITEM = re.compile(
    r"(?:(\*)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?",
    re.ASCII,
)
_NUMBER = re.compile(r"[0-9]{1,2}", re.ASCII)
# Days in each month of a leap year: a day that no chosen month has never fires.
_LONGEST_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# The longest wait between two fires of a valid expression is 40 years (a 29
# February that is a Sunday, across 2100, which is no leap year); a search gives up
# past it.
_HORIZON_YEARS = 50


def _value(field: _Field, text: str, whole: str) -> int:
    if _NUMBER.fullmatch(text):
        value = int(text)
    elif text in field.names:
        value = field.names.index(text) + field.low
    else:
        value = -1
    if not field.low <= value <= field.high:
        names = f" or {field.names[0]} to {field.names[-1]}" if field.names else ""
        raise CronError(
            f"the {field.name} field '{whole}' has '{text}': use {field.low} to "
            f"{field.high}{names}"
        )
    return value


def _parse_field(field: _Field, text: str) -> frozenset[int]:
    bad = _BAD_CHARACTER.search(text)
    if bad is not None:
        raise CronError(
            f"the {field.name} field has a character cron does not know "
            f"(U+{ord(bad[0]):04X}): use digits, names, * , - and /"
        )
    values: set[int] = set()
    for item in text.lower().split(","):
        match = _ITEM.fullmatch(item)
        if match is None or (match[4] is not None and match[2] and not match[3]):
            raise CronError(
                f"the {field.name} field '{text}' is not *, n, a-b or a list of them; "
                "only * and a-b take a /step"
            )
        star, first, last, step_text = match.groups()
        if star:
            low, high = field.low, field.high
        else:
            low = _value(field, first, text)
            high = low if last is None else _value(field, last, text)
            if low > high:
                raise CronError(
                    f"the {field.name} field '{text}' has the range {first}-{last} "
                    "backwards: a range goes from low to high"
                )
        step = 1
        if step_text is not None:
            span = field.high - field.low + 1
            step = int(step_text) if _NUMBER.fullmatch(step_text) else 0
            if not 1 <= step <= span:
                raise CronError(
                    f"the {field.name} field '{text}' has step {step_text}: use 1 to "
                    f"{span}"
                )
        values.update(range(low, high + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the values of each field, and how it meets a time
    zone's transitions (``by_elapsed_time``)."""

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: tuple[int, ...]
    weekdays: frozenset[int]  # 0 = Sunday; 7 is read as 0
    #: Neither day field starts with *: a day matches either (else, both).
    day_or: bool
    #: The hour field starts with * or has a step: fires follow elapsed time.
    by_elapsed_time: bool

    # -- wall-clock arithmetic (naive datetimes, whole seconds) -----------------

    def _day_matches(self, weekday_of_first: int, day: int) -> bool:
        # calendar's weekday: Monday = 0; cron's: Sunday = 0.
        weekday = (weekday_of_first + day) % 7
        if self.day_or:
            return day in self.days or weekday in self.weekdays
        return day in self.days and weekday in self.weekdays

    def _wall_at_or_after(self, start: datetime) -> datetime:
        """The first matching wall-clock time at or after ``start`` (whole seconds)."""
        last_year = min(start.year + _HORIZON_YEARS, 9999)
        for year in range(start.year, last_year + 1):
            tight_year = year == start.year
            first = bisect_left(self.months, start.month) if tight_year else 0
            for month in self.months[first:]:
                tight_month = tight_year and month == start.month
                weekday_of_first, length = calendar.monthrange(year, month)
                for day in range(start.day if tight_month else 1, length + 1):
                    if not self._day_matches(weekday_of_first, day):
                        continue
                    tight_day = tight_month and day == start.day
                    first = bisect_left(self.hours, start.hour) if tight_day else 0
                    for hour in self.hours[first:]:
                        tight_hour = tight_day and hour == start.hour
                        first = (
                            bisect_left(self.minutes, start.minute) if tight_hour else 0
                        )
                        for minute in self.minutes[first:]:
                            tight = tight_hour and minute == start.minute
                            first = (
                                bisect_left(self.seconds, start.second) if tight else 0
                            )
                            if first < len(self.seconds):
                                return datetime(
                                    year, month, day, hour, minute, self.seconds[first]
                                )
        raise CronError(f"cron {self.expression!r} does not fire after {start}")

    def _wall_at_or_before(self, end: datetime) -> datetime:
        """The last matching wall-clock time at or before ``end`` (whole seconds)."""
        first_year = max(end.year - _HORIZON_YEARS, 1)
        for year in range(end.year, first_year - 1, -1):
            tight_year = year == end.year
            stop = bisect_right(self.months, end.month) if tight_year else 12
            for month in reversed(self.months[:stop]):
                tight_month = tight_year and month == end.month
                weekday_of_first, length = calendar.monthrange(year, month)
                for day in range(end.day if tight_month else length, 0, -1):
                    if not self._day_matches(weekday_of_first, day):
                        continue
                    tight_day = tight_month and day == end.day
                    stop = bisect_right(self.hours, end.hour) if tight_day else 24
                    for hour in reversed(self.hours[:stop]):
                        tight_hour = tight_day and hour == end.hour
                        stop = (
                            bisect_right(self.minutes, end.minute) if tight_hour else 60
                        )
                        for minute in reversed(self.minutes[:stop]):
                            tight = tight_hour and minute == end.minute
                            stop = (
                                bisect_right(self.seconds, end.second)
                                if tight
                                else len(self.seconds)
                            )
                            if stop > 0:
                                return datetime(
                                    year,
                                    month,
                                    day,
                                    hour,
                                    minute,
                                    self.seconds[stop - 1],
                                )
        raise CronError(f"cron {self.expression!r} did not fire before {end}")

    # -- instants in a zone ------------------------------------------------------

    def next_after(self, when: datetime, zone: tzinfo) -> datetime:
        """The first fire strictly after ``when`` (aware), with the zone's UTC offset
        at that instant."""
        instant = _utc(when)
        if self.by_elapsed_time:
            return _in_zone(self._next_elapsed(instant, zone), zone)
        repeated_until = _repeated_until(instant, zone)
        if repeated_until is not None:
            # The second pass of a repeated hour: its wall-clock times fired on the
            # first pass; the next fire is at or after the first time not repeated.
            wall = self._wall_at_or_after(repeated_until)
        else:
            wall = self._wall_at_or_after(_after(_naive(instant.astimezone(zone))))
        return _in_zone(_first_instant(wall, zone), zone)

    def latest_at(self, when: datetime, zone: tzinfo) -> datetime:
        """The last fire at or before ``when`` (aware), with the zone's offset."""
        instant = _utc(when)
        if self.by_elapsed_time:
            return _in_zone(self._latest_elapsed(instant, zone), zone)
        repeated_until = _repeated_until(instant, zone)
        if repeated_until is not None:
            # Every time of the repeated hour fired on its first pass, before now.
            wall = self._wall_at_or_before(repeated_until - _SECOND_STEP)
        else:
            wall = self._wall_at_or_before(_floor(_naive(instant.astimezone(zone))))
        return _in_zone(_first_instant(wall, zone), zone)

    def fires(self, after: datetime, zone: tzinfo) -> Iterator[datetime]:
        """Every fire strictly after ``after``, oldest first, without end."""
        while True:
            after = self.next_after(after, zone)
            yield after

    def _next_elapsed(self, instant: datetime, zone: tzinfo) -> datetime:
        # Within each stretch of constant UTC offset the fires are the matching
        # wall-clock times; walk the stretches from ``instant`` on.
        start, inclusive = instant, False
        while True:
            offset = _offset(zone, start)
            wall = _naive(start + offset)
            wall = self._wall_at_or_after(_ceil(wall) if inclusive else _after(wall))
            fire = (wall - offset).replace(tzinfo=UTC)
            change = _transition_after(zone, start, until=fire)
            if change is None:
                return fire
            start, inclusive = change.at, True

    def _latest_elapsed(self, instant: datetime, zone: tzinfo) -> datetime:
        end, inclusive, offset = instant, True, _offset(zone, instant)
        while True:
            wall = _naive(end + offset)
            wall = self._wall_at_or_before(_floor(wall) if inclusive else _before(wall))
            fire = (wall - offset).replace(tzinfo=UTC)
            # The stretch of this offset began at the last change before ``end``.
            change = _transition_before(zone, end, since=fire, inclusive=inclusive)
            if change is None:
                return fire
            end, inclusive, offset = change.at, False, change.before


def parse(expression: str) -> Cron:
    """Read ``expression`` (see the module's docstring); CronError if it is not in
    the grammar or can never fire."""
    if not isinstance(expression, str):
        raise CronError(f"a cron is text, not {type(expression).__name__}")
    stripped = expression.strip(" \t")
    if not stripped:
        raise CronError(f"it is empty: {_EXAMPLE}")
    if stripped.startswith("@"):
        instead = _MACROS.get(stripped.lower())
        if instead is not None:
            raise CronError(f"macros are not read: write '{instead}' for {stripped}")
        raise CronError(f"a cron does not start with @: {_EXAMPLE}")
    fields = _SEPARATOR.split(stripped)
    if len(fields) not in (5, 6):
        raise CronError(f"it has {len(fields)} fields: {_EXAMPLE}")
    values = [
        _parse_field(field, text)
        for field, text in zip(_FIELDS[: len(fields)], fields, strict=True)
    ]
    minutes, hours, days, months, weekdays = values[:5]
    seconds = values[5] if len(fields) == 6 else frozenset({0})
    # A field that starts with * does not restrict the day for the OR: the two
    # fields must then both match. A day-of-month field that starts with * has the
    # 1st; another must have a day some chosen month has (29 February counts).
    days_star, weekdays_star = fields[2][0] == "*", fields[4][0] == "*"
    if (
        not days_star
        and weekdays_star
        and not any(day <= _LONGEST_MONTH[month] for month in months for day in days)
    ):
        raise CronError(
            f"it never fires: no month in '{fields[3]}' has a day '{fields[2]}'"
        )
    return Cron(
        expression=expression,
        seconds=tuple(sorted(seconds)),
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=days,
        months=tuple(sorted(months)),
        weekdays=frozenset(day % 7 for day in weekdays),
        day_or=not days_star and not weekdays_star,
        by_elapsed_time=fields[1][0] == "*" or "/" in fields[1],
    )


def problem(expression: str) -> str | None:
    """What is wrong with ``expression``, or None: the Python side of Postgres's
    ``agnt_cron_problem``."""
    try:
        parse(expression)
    except CronError as error:
        return str(error)
    return None


# -- the zone's transitions ------------------------------------------------------

_SECOND_STEP = timedelta(seconds=1)
_DAY = timedelta(days=1)
# A zone's offset is probed this often to find its transitions; no zone changes
# its offset twice within it.
_PROBE = timedelta(hours=6)


@dataclass(frozen=True)
class _Transition:
    at: datetime  # the first instant (UTC) with the new offset
    before: timedelta
    after: timedelta


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise CronError(f"{when} has no time zone: give an aware datetime")
    return when.astimezone(UTC)


def _in_zone(instant: datetime, zone: tzinfo) -> datetime:
    """``instant`` with the zone's offset at that instant, as a fixed offset: two
    such times compare and subtract as instants even inside a repeated hour, where
    times of one ZoneInfo compare by wall clock."""
    return instant.astimezone(timezone(_offset(zone, instant)))


def _naive(when: datetime) -> datetime:
    return when.replace(tzinfo=None, fold=0)


def _ceil(wall: datetime) -> datetime:
    """The first whole second at or after ``wall``."""
    if wall.microsecond:
        return wall.replace(microsecond=0) + _SECOND_STEP
    return wall


def _after(wall: datetime) -> datetime:
    """The first whole second strictly after ``wall``."""
    return wall.replace(microsecond=0) + _SECOND_STEP


def _floor(wall: datetime) -> datetime:
    return wall.replace(microsecond=0)


def _before(wall: datetime) -> datetime:
    """The last whole second strictly before ``wall``."""
    return _ceil(wall) - _SECOND_STEP


def _offset(zone: tzinfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    return offset if offset is not None else timedelta(0)


@lru_cache(maxsize=512)
def _transitions_in(zone: tzinfo, year: int) -> tuple[_Transition, ...]:
    """The offset changes of ``zone`` in a UTC calendar year, in order."""
    found = []
    probe = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC) if year < 9999 else probe
    previous = _offset(zone, probe - _SECOND_STEP) if year > 1 else _offset(zone, probe)
    low = probe - _SECOND_STEP
    while probe <= end:
        current = _offset(zone, probe)
        if current != previous:
            # Bisect to the second: the first instant with the new offset.
            high = probe
            while high - low > _SECOND_STEP:
                middle = low + (high - low) // 2
                middle = middle.replace(microsecond=0)
                if _offset(zone, middle) == previous:
                    low = middle
                else:
                    high = middle
            if high.year == year:
                found.append(_Transition(high, previous, current))
            previous = current
        low = probe
        probe += _PROBE
    return tuple(found)


def _transition_after(
    zone: tzinfo, instant: datetime, until: datetime
) -> _Transition | None:
    """The first offset change in ``(instant, until]``."""
    for year in range(instant.year, until.year + 1):
        for change in _transitions_in(zone, year):
            if instant < change.at <= until:
                return change
    return None


def _transition_before(
    zone: tzinfo, instant: datetime, since: datetime, inclusive: bool = True
) -> _Transition | None:
    """The last offset change in ``(since, instant]`` (``(since, instant)`` when
    not ``inclusive``)."""
    for year in range(instant.year, since.year - 1, -1):
        for change in reversed(_transitions_in(zone, year)):
            if since < change.at and (
                change.at <= instant if inclusive else change.at < instant
            ):
                return change
    return None


def _repeated_until(instant: datetime, zone: tzinfo) -> datetime | None:
    """When ``instant`` is on the second pass of a repeated hour, the wall-clock
    time at which the repetition ends (the first time that happens once); else
    None."""
    if not instant.astimezone(zone).fold:
        return None
    change = _transition_before(zone, instant, since=instant - _DAY)
    assert change is not None
    return _naive(change.at + change.before)


def _first_instant(wall: datetime, zone: tzinfo) -> datetime:
    """The instant a wall-clock time names under the wall-clock rules: the time
    itself; its first occurrence if it happens twice; the jump if it is skipped."""
    early = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    late = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if early <= late:
        return early
    # Skipped: fold=0 reads it with the offset before the jump, fold=1 with the
    # one after; the jump lies between the two readings.
    change = _transition_after(zone, late, until=early)
    assert change is not None
    return change.at
