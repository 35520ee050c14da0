"""What an expression means: Vixie cron's equal-ended ranges and starred day fields,
Sunday as 0 and 7, the seconds field, the refusals, and fire times as instants."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agnt_jobs.scheduler.cron import CronError, parse
from agnt_jobs.scheduler.declaration import Schedule, ScheduleError
from tests.support.cron_scan import scan

NEW_YORK = ZoneInfo("America/New_York")
MONDAY = datetime(2027, 3, 1, tzinfo=UTC)  # a Monday


def fires(expression: str, after: datetime, count: int, zone=UTC) -> list[datetime]:
    cron, found = parse(expression), []
    for _ in range(count):
        after = cron.next_after(after, zone)
        found.append(after.astimezone(UTC))
    return found


@pytest.mark.parametrize(
    ("expression", "same_as"),
    [
        ("5-5 * * * *", "5 * * * *"),
        ("0 9-9 * * *", "0 9 * * *"),
        ("0 9 * * 1-1", "0 9 * * 1"),
        ("0 9 * * sun-sun", "0 9 * * 0"),
        ("0 0 */1 * mon", "0 0 * * mon"),  # a * day field makes the other AND
        ("0 0 * * 7", "0 0 * * 0"),
        ("0 0 * * 0-7", "0 0 * * *"),
        ("0 0 * JAN-mar SAT", "0 0 * 1-3 6"),
        ("*/20 * * * *", "0,20,40 * * * *"),
        ("10-50/20 * * * *", "10,30,50 * * * *"),
        ("0 0 1-31/10 * *", "0 0 1,11,21,31 * *"),
    ],
)
def test_vixie_cron_meanings(expression: str, same_as: str) -> None:
    assert fires(expression, MONDAY, 30) == fires(same_as, MONDAY, 30)


def test_two_restricted_day_fields_are_or_ed_and_a_starred_one_is_and_ed() -> None:
    either = fires("0 0 13 * fri", MONDAY, 10)
    assert all(f.day == 13 or f.weekday() == 4 for f in either)
    assert any(f.day != 13 for f in either) and any(f.weekday() != 4 for f in either)
    both = fires("0 0 */2 * mon", MONDAY, 10)
    assert all(f.day % 2 == 1 and f.weekday() == 0 for f in both)


def test_a_sixth_field_is_seconds_and_agrees_with_the_scan() -> None:
    rng = random.Random(6)
    zone = ZoneInfo("Australia/Lord_Howe")
    for expression in ("* * * * * */2", "*/7 * * * * 10-20/5", "0 2 * * * 30"):
        cron = parse(expression)
        for _ in range(20):
            start = datetime(2027, 4, 3, 14, 59, tzinfo=UTC) + timedelta(
                seconds=rng.uniform(0, 7200)
            )
            assert fires(expression, start, 5, zone) == scan(cron, zone, start, 5)
    assert fires("* * * * * */2", MONDAY, 3) == [
        MONDAY + timedelta(seconds=s) for s in (2, 4, 6)
    ]


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("", "it is empty"),
        ("* * * *", "it has 4 fields"),
        ("* * * * * * *", "it has 7 fields"),
        ("@daily", "macros are not read: write '0 0 * * *' for @daily"),
        ("@reboot", "a cron does not start with @"),
        ("0 9 L * *", "the day-of-month field 'L' has 'l'"),
        ("0 9 ? * mon", "the day-of-month field has a character cron does not know "
         "(U+003F)"),
        ("0 9 * * mon#2", "(U+0023)"),
        ("\u0663 * * * *", "the minute field has a character cron does not know "
         "(U+0663)"),
        ("*\u00a0* * * * *", "(U+00A0)"),
        ("5/10 * * * *", "only * and a-b take a /step"),
        ("5-1 * * * *", "has the range 5-1 backwards"),
        ("*/61 * * * *", "has step 61: use 1 to 60"),
        ("005 * * * *", "has '005': use 0 to 59"),
        ("0 0 * * mon-sun", "has the range mon-sun backwards"),
        ("0 0 30 2 *", "it never fires: no month in '2' has a day '30'"),
        ("0 0 31 apr,jun,sep,nov *", "it never fires"),
    ],
)  # fmt: skip
def test_what_the_grammar_refuses(expression: str, problem: str) -> None:
    with pytest.raises(CronError) as refused:
        parse(expression)
    assert problem in str(refused.value)
    with pytest.raises(ScheduleError, match="invalid cron"):
        Schedule("refused", expression, "")


def test_29_february_fires_in_leap_years_and_on_a_weekday_decades_apart() -> None:
    assert fires("0 0 29 2 *", MONDAY, 3) == [
        datetime(year, 2, 29, tzinfo=UTC) for year in (2028, 2032, 2036)
    ]
    # Both day fields AND-ed: a 29 February that is a Sunday, 28 years apart.
    assert fires("0 0 29 2 */7", MONDAY, 2) == [
        datetime(2032, 2, 29, tzinfo=UTC),
        datetime(2060, 2, 29, tzinfo=UTC),
    ]


def test_fire_times_compare_as_instants_inside_a_repeated_hour() -> None:
    """Fires carry a fixed offset: two in the repeated hour order by instant, not
    by wall clock, and latest_at finds each."""
    cron = parse("30 * * * *")
    first = cron.next_after(datetime(2027, 11, 7, 5, 0, tzinfo=UTC), NEW_YORK)
    second = cron.next_after(first, NEW_YORK)
    assert (first.hour, second.hour) == (1, 1) and first < second
    assert second - first == timedelta(hours=1)
    assert cron.latest_at(second, NEW_YORK) == second
    assert cron.latest_at(second - timedelta(seconds=1), NEW_YORK) == first


def test_latest_at_is_the_fire_before_next_after() -> None:
    rng = random.Random(11)
    for expression in ("30 1 * * *", "*/15 2 * * *", "0 * * * *", "0 9 1 * *"):
        cron = parse(expression)
        for _ in range(200):
            at = datetime(2027, 3, 12, tzinfo=UTC) + timedelta(
                seconds=rng.uniform(0, 260 * 86400)
            )
            latest = cron.latest_at(at, NEW_YORK)
            assert latest <= at < cron.next_after(latest, NEW_YORK)
            assert cron.next_after(latest - timedelta(microseconds=1), NEW_YORK) == (
                latest
            )


def test_an_instant_without_a_zone_is_refused() -> None:
    with pytest.raises(CronError, match="no time zone"):
        parse("* * * * *").next_after(datetime(2027, 1, 1), UTC)


def test_on_the_second_pass_of_a_repeated_hour_its_times_have_fired() -> None:
    cron = parse("45 1 * * *")
    second_pass = datetime(2027, 11, 7, 6, 30, tzinfo=UTC)  # 01:30 EST
    first_pass_fire = datetime(2027, 11, 7, 5, 45, tzinfo=UTC)  # 01:45 EDT
    assert cron.next_after(second_pass, NEW_YORK) == datetime(
        2027, 11, 8, 6, 45, tzinfo=UTC
    )
    assert cron.latest_at(second_pass, NEW_YORK) == first_pass_fire
