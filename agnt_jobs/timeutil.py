"""Calendar periods in the business zone (WITA, Asia/Makassar): "today", "yesterday",
"this ISO week", "last month" as half-open UTC ranges ``[start, end)`` for SQL.

Jobs store and compare ``timestamptz``; only the *edges* of a period depend on the
zone, so every period is computed here, once, from an instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Period:
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC
    label: str  # "2026-11-25", "2026-W48", "2026-11": stable, for idempotency keys


def zone(name: str = "Asia/Makassar") -> ZoneInfo:
    return ZoneInfo(name)


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def _utc(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


def day(instant: datetime, tz: ZoneInfo, offset_days: int = 0) -> Period:
    """The local calendar day containing ``instant`` (offset -1: the day before)."""
    current = local_date(instant, tz) + timedelta(days=offset_days)
    return Period(
        _utc(current, tz), _utc(current + timedelta(days=1), tz), current.isoformat()
    )


def iso_week(instant: datetime, tz: ZoneInfo, offset_weeks: int = 0) -> Period:
    """The local ISO week (Monday to Monday) containing ``instant``."""
    current = local_date(instant, tz) + timedelta(weeks=offset_weeks)
    monday = current - timedelta(days=current.isoweekday() - 1)
    year, week, _ = monday.isocalendar()
    return Period(
        _utc(monday, tz),
        _utc(monday + timedelta(days=7), tz),
        f"{year}-W{week:02d}",
    )


def month(instant: datetime, tz: ZoneInfo, offset_months: int = 0) -> Period:
    """The local calendar month containing ``instant`` (offset -1: the one before)."""
    current = local_date(instant, tz)
    index = current.year * 12 + current.month - 1 + offset_months
    first = date(index // 12, index % 12 + 1, 1)
    following = date((index + 1) // 12, (index + 1) % 12 + 1, 1)
    return Period(_utc(first, tz), _utc(following, tz), f"{first:%Y-%m}")
