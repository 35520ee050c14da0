"""Misfire policy as pure arithmetic: which ticks run and which are recorded missed,
after a restart, a long outage, or for a schedule never seen before."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from agnt_jobs.scheduler import misfire
from agnt_jobs.scheduler.declaration import Misfire, Schedule

WITA = ZoneInfo("Asia/Makassar")
HOURLY_SKIP = Schedule("hourly", "0 * * * *", "")
DAILY_CATCH_UP = Schedule("daily", "0 5 * * *", "", Misfire.CATCH_UP)
TOLERANCE = timedelta(minutes=10)
GRACE = timedelta(hours=24)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=WITA)


def plan(schedule: Schedule, last: datetime | None, now: datetime) -> misfire.Plan:
    return misfire.plan(schedule, last, now, TOLERANCE, GRACE)


def test_on_time_tick_is_due_once() -> None:
    assert plan(HOURLY_SKIP, at(4, 9), at(4, 10, 0)) == misfire.Plan(due=(at(4, 10),))
    assert plan(HOURLY_SKIP, at(4, 10), at(4, 10, 30)) == misfire.Plan()


def test_skip_runs_only_the_latest_tick_within_tolerance() -> None:
    # Down from 09:30 to 12:05: 10:00 and 11:00 are missed, 12:00 runs (5 min late).
    result = plan(HOURLY_SKIP, at(4, 9), at(4, 12, 5))
    assert result == misfire.Plan(missed=(at(4, 10), at(4, 11)), due=(at(4, 12),))


def test_skip_runs_nothing_when_even_the_latest_is_too_late() -> None:
    result = plan(HOURLY_SKIP, at(4, 9), at(4, 12, 30))
    assert result == misfire.Plan(missed=(at(4, 10), at(4, 12)))


def test_catch_up_runs_every_missed_tick_inside_the_grace_window() -> None:
    # Last decided on the 2nd; back at 06:00 on the 4th. The 3rd 05:00 is 25h old
    # (outside 24h grace), the 4th 05:00 is inside.
    result = plan(DAILY_CATCH_UP, at(2, 5), at(4, 6))
    assert result == misfire.Plan(missed=(at(3, 5), at(3, 5)), due=(at(4, 5),))
    # Back at 04:00 on the 4th: the 3rd 05:00 is 23h old and runs.
    assert plan(DAILY_CATCH_UP, at(2, 5), at(4, 4)) == misfire.Plan(due=(at(3, 5),))


def test_catch_up_of_many_ticks_is_bounded_per_pass() -> None:
    every_minute = Schedule("m", "* * * * *", "", Misfire.CATCH_UP)
    result = plan(every_minute, at(4, 9), at(4, 10))
    assert result.missed is None
    assert result.due == tuple(at(4, 9, m) for m in range(1, 11))


def test_a_schedule_never_decided_owes_nothing_from_the_past() -> None:
    assert plan(DAILY_CATCH_UP, None, at(4, 5, 5)) == misfire.Plan(due=(at(4, 5),))
    assert plan(DAILY_CATCH_UP, None, at(4, 6)) == misfire.Plan()


def test_a_tick_exactly_at_the_tolerance_runs_and_one_microsecond_later_not() -> None:
    edge = at(4, 12) + TOLERANCE
    assert plan(HOURLY_SKIP, at(4, 11), edge) == misfire.Plan(due=(at(4, 12),))
    late = edge + timedelta(microseconds=1)
    assert plan(HOURLY_SKIP, at(4, 11), late) == misfire.Plan(
        missed=(at(4, 12), at(4, 12))
    )
    # The same edge for a schedule never decided before.
    assert plan(HOURLY_SKIP, None, edge) == misfire.Plan(due=(at(4, 12),))
    assert plan(HOURLY_SKIP, None, late) == misfire.Plan()


def test_a_tick_exactly_grace_old_is_caught_up_and_one_microsecond_older_not() -> None:
    # Last decided on the 2nd; the 3rd 05:00 is exactly GRACE old at the 4th 05:00.
    edge = at(3, 5) + GRACE
    assert plan(DAILY_CATCH_UP, at(2, 5), edge) == misfire.Plan(
        due=(at(3, 5), at(4, 5))
    )
    late = edge + timedelta(microseconds=1)
    assert plan(DAILY_CATCH_UP, at(2, 5), late) == misfire.Plan(
        missed=(at(3, 5), at(3, 5)), due=(at(4, 5),)
    )
