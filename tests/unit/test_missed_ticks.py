"""The latest tick of a schedule read in its own zone (WITA), at or before an
instant: weekly and daily edges where the UTC day differs."""

from __future__ import annotations

from datetime import UTC, datetime

from agnt_jobs.missed_ticks import latest_tick

WITA = "Asia/Makassar"


def test_weekly_monday_tick_is_sunday_in_utc() -> None:
    # Mon 04:00 WITA is Sun 20:00 UTC.
    monday_tick = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)
    assert latest_tick("0 4 * * 1", WITA, monday_tick) == monday_tick
    just_before = datetime(2026, 11, 22, 19, 59, 59, tzinfo=UTC)
    assert latest_tick("0 4 * * 1", WITA, just_before) == datetime(
        2026, 11, 15, 20, 0, tzinfo=UTC
    )


def test_daily_and_interval_ticks() -> None:
    at = datetime(2026, 11, 24, 1, 7, tzinfo=UTC)  # 09:07 WITA
    assert latest_tick("0 8 * * *", WITA, at) == datetime(
        2026, 11, 24, 0, 0, tzinfo=UTC
    )
    assert latest_tick("*/5 * * * *", WITA, at) == datetime(
        2026, 11, 24, 1, 5, tzinfo=UTC
    )
    # The same cron read in UTC fires at 08:00 UTC, the previous day here.
    assert latest_tick("0 8 * * *", "UTC", at) == datetime(
        2026, 11, 23, 8, 0, tzinfo=UTC
    )
