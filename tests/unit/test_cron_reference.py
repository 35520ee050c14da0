"""Our fire times against an independent Vixie-cron evaluator (cronsim, the one
behind healthchecks.io), over thousands of seeded random expressions in six zones,
from instants in 2026-2030 clustered around DST transitions: the next five fires.

Where the two differ, a minute-by-minute walk over real instants that applies the
documented rules literally (``tests.support.cron_scan``) is the arbiter: ours must
agree with it, and the difference must be one of the named reasons below, each a
rule of docs/schedules.md or a known gap of the reference.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from cronsim import CronSim

from agnt_jobs.scheduler.cron import Cron, CronError, parse
from tests.support.cron_scan import scan

ZONES = (
    "Asia/Makassar",
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
)
CASES = 10_000
FIRES = 5
SEED = 20261206

# Why a fire time of ours may differ from cronsim's:
#: Our rule: an hour field that is neither * nor a step names wall-clock times,
#: whatever the minute field says (``*/15 2 * * *`` fires once at a spring-forward
#: jump, and once per repeated time). cronie, and cronsim after it, follow elapsed
#: time as soon as the minute field starts with *.
FIXED_HOUR_STAR_MINUTE = "fixed hour, minute starting with *: wall-clock rule"
#: Our rule: an hour field with a step (``0-23/2``) follows elapsed time, like
#: ``*/2``; cronsim follows the wall clock unless the field starts with *.
HOUR_STEP = "hour field with a step: elapsed-time rule"
#: Reference gap: started inside the second pass of a repeated hour, cronsim walks
#: the naive wall clock and returns the first pass's time, before its start.
BEFORE_START = (
    "cronsim returns a fire before its start (second pass of a repeated hour)"
)
#: Reference gap: at Lord Howe's 30-minute shift cronsim's hour-by-hour arithmetic
#: lands on the half hour or skips a fire.
LORD_HOWE = "cronsim at Lord Howe's 30-minute shift"


@cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """Every offset change of the zone in 2026-2030, found hour by hour (to the
    minute: enough to cluster start instants around them)."""
    zone = ZoneInfo(zone_name)
    found = []
    at = datetime(2026, 1, 1, tzinfo=UTC)
    previous = at.astimezone(zone).utcoffset()
    while at.year < 2031:
        offset = (at + timedelta(hours=1)).astimezone(zone).utcoffset()
        if offset != previous:
            minute = at
            while minute.astimezone(zone).utcoffset() == previous:
                minute += timedelta(minutes=1)
            found.append(minute)
            previous = offset
        at += timedelta(hours=1)
    return tuple(found)


def _field(rng: random.Random, low: int, high: int, names: tuple[str, ...]) -> str:
    def value() -> str:
        number = rng.randint(low, high)
        if names and rng.random() < 0.3 and number - low < len(names):
            name = names[number - low]
            return name.upper() if rng.random() < 0.3 else name
        return str(number)

    def item() -> str:
        kind = rng.random()
        if kind < 0.4:
            return value()
        first = rng.randint(low, high)
        if kind < 0.55:
            return f"{first}-{first}"  # a range with equal ends is one value
        last = rng.randint(first, high)
        if kind < 0.8:
            return f"{first}-{last}"
        return f"{first}-{last}/{rng.randint(1, max(1, (last - first) // 2 + 1))}"

    kind = rng.random()
    if kind < 0.3:
        return "*"
    if kind < 0.45:
        return f"*/{rng.randint(1, (high - low + 1) // 2)}"
    if kind < 0.8:
        return item()
    return ",".join(item() for _ in range(rng.randint(2, 4)))


def expressions(rng: random.Random) -> str:
    while True:
        minute = _field(rng, 0, 59, ())
        hour = rng.choice(
            [
                _field(rng, 0, 23, ()),
                "1",
                "2",
                "1-3",
                "*",
                "*/2",
                "0-23/2",
                "1-5/2",
                "2,14",
            ]
        )
        dom = _field(rng, 1, 31, ()) if rng.random() < 0.35 else "*"
        month = _field(rng, 1, 12, MONTHS) if rng.random() < 0.25 else "*"
        dow = _field(rng, 0, 7, DAYS) if rng.random() < 0.35 else "*"
        expression = f"{minute} {hour} {dom} {month} {dow}"
        try:
            parse(expression)
        except CronError:  # e.g. a day no chosen month has
            continue
        return expression


MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
          "nov", "dec")  # fmt: skip
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def start_instant(rng: random.Random, zone_name: str) -> datetime:
    near = transitions(zone_name) or transitions("Europe/London")
    kind = rng.random()
    if kind < 0.8:
        spread = timedelta(hours=3) if kind < 0.5 else timedelta(days=2)
        at = rng.choice(near) + rng.uniform(-1, 1) * spread
    else:
        at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(
            seconds=rng.uniform(0, 5 * 365 * 86400)
        )
    return at.replace(microsecond=0)


def ours(cron: Cron, zone: ZoneInfo, start: datetime) -> list[datetime]:
    fires, at = [], start
    for _ in range(FIRES):
        at = cron.next_after(at, zone)
        fires.append(at.astimezone(UTC))
    return fires


def reference(expression: str, zone: ZoneInfo, start: datetime) -> list[datetime]:
    iterator = CronSim(expression, start.astimezone(zone))
    return [next(iterator).astimezone(UTC) for _ in range(FIRES)]


def _crosses_transition(zone_name: str, start: datetime, fire: datetime) -> bool:
    """A transition of the zone lies between the start and the fire (give or take
    the length of a shift)."""
    margin = timedelta(hours=3)
    return any(start - margin <= t <= fire + margin for t in transitions(zone_name))


def reason(
    expression: str,
    zone_name: str,
    start: datetime,
    mine: list[datetime],
    theirs: list[datetime],
) -> str | None:
    """The named reason for a difference, or None when none explains it."""
    minute, hour = expression.split()[:2]
    first = next(i for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b)
    where = min(mine[first], theirs[first])
    if any(fire <= start for fire in theirs):
        return BEFORE_START
    if not _crosses_transition(zone_name, start, where):
        return None
    if zone_name == "Australia/Lord_Howe" and (
        minute.startswith("*") or hour.startswith("*")
    ):
        return LORD_HOWE
    if minute.startswith("*") and not hour.startswith("*") and "/" not in hour:
        return FIXED_HOUR_STAR_MINUTE
    if "/" in hour and not hour.startswith("*"):
        return HOUR_STEP
    return None


def test_fire_times_agree_with_cronsim_but_for_named_rules() -> None:
    rng = random.Random(SEED)
    reasons: Counter[str] = Counter()
    unexplained = []
    for _ in range(CASES):
        expression = expressions(rng)
        zone_name = rng.choice(ZONES)
        zone = ZoneInfo(zone_name)
        start = start_instant(rng, zone_name)
        cron = parse(expression)
        mine = ours(cron, zone, start)
        theirs = reference(expression, zone, start)
        if mine == theirs:
            reasons["same"] += 1
            continue
        arbiter = scan(cron, zone, start, FIRES)
        why = reason(expression, zone_name, start, mine, theirs)
        if mine != arbiter or why is None:
            unexplained.append(
                f"{expression!r} in {zone_name} after {start.isoformat()}: "
                f"ours {[f.isoformat() for f in mine]}, cronsim "
                f"{[f.isoformat() for f in theirs]}, scan "
                f"{[f.isoformat() for f in arbiter]}, reason {why}"
            )
            continue
        reasons[why] += 1
    assert not unexplained, "\n".join(unexplained[:20])
    assert sum(reasons.values()) == CASES
    print(dict(reasons))
    # The sample reaches the transitions: each reason shows up.
    assert reasons["same"] > 0.8 * CASES
    for why in (FIXED_HOUR_STAR_MINUTE, HOUR_STEP, BEFORE_START):
        assert reasons[why] > 0, why
