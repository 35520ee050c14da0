from datetime import UTC, datetime

from agnt_jobs import timeutil

WITA = timeutil.zone("Asia/Makassar")


def test_day_edges_are_wita_midnights() -> None:
    # 2026-11-24 17:30 UTC is already 2026-11-25 01:30 in WITA.
    today = timeutil.day(datetime(2026, 11, 24, 17, 30, tzinfo=UTC), WITA)
    assert today.label == "2026-11-25"
    assert today.start == datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
    assert today.end == datetime(2026, 11, 25, 16, 0, tzinfo=UTC)
    yesterday = timeutil.day(datetime(2026, 11, 24, 17, 30, tzinfo=UTC), WITA, -1)
    assert yesterday.label == "2026-11-24"
    assert yesterday.end == today.start


def test_iso_week_starts_monday_wita() -> None:
    # Sunday 2026-11-29 20:00 UTC is Monday 2026-11-30 04:00 WITA: a new week.
    week = timeutil.iso_week(datetime(2026, 11, 29, 20, 0, tzinfo=UTC), WITA)
    assert week.label == "2026-W49"
    assert week.start == datetime(2026, 11, 29, 16, 0, tzinfo=UTC)
    last = timeutil.iso_week(datetime(2026, 11, 29, 20, 0, tzinfo=UTC), WITA, -1)
    assert last.label == "2026-W48"
    assert last.end == week.start


def test_previous_month_across_a_year_and_a_leap_february() -> None:
    # 1 Jan 2027 05:00 WITA is 31 Dec 2026 21:00 UTC.
    tick = datetime(2026, 12, 31, 21, 0, tzinfo=UTC)
    previous = timeutil.month(tick, WITA, -1)
    assert previous.label == "2026-12"
    assert previous.start == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert previous.end == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    february = timeutil.month(datetime(2028, 3, 1, 1, 0, tzinfo=UTC), WITA, -1)
    assert february.label == "2028-02"
    assert (february.end - february.start).days == 29
