"""The time-zone rules at DST transitions: the table docs/schedules.md shows is the
one the evaluator makes, and a daily cron fires exactly once on every local day,
transition days included, in every zone the rules are written for."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agnt_jobs.scheduler.cron import parse

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "schedules.md"
BEGIN, END = "<!-- dst-table: begin -->", "<!-- dst-table: end -->"
TABLE_ZONES = ("America/New_York", "Europe/London", "Australia/Lord_Howe")
TABLE_CRONS = ("30 1 * * *", "30 2 * * *", "*/15 2 * * *", "0 * * * *")
YEAR = 2027
# The fires shown: those within this much of the transition.
WINDOW = timedelta(hours=2)


def transitions(zone: ZoneInfo, year: int) -> list[datetime]:
    """The zone's offset changes in a year, to the minute, by a plain walk."""
    found = []
    at = datetime(year, 1, 1, tzinfo=UTC)
    while at.year == year:
        later = at + timedelta(hours=1)
        if later.astimezone(zone).utcoffset() != at.astimezone(zone).utcoffset():
            offset = at.astimezone(zone).utcoffset()
            while at.astimezone(zone).utcoffset() == offset:
                at += timedelta(minutes=1)
            found.append(at)
        at = later
    return found


def _local(instant: datetime, zone: ZoneInfo) -> str:
    local = instant.astimezone(zone)
    return f"{local:%H:%M} {local:%z}"


def dst_table() -> str:
    lines = [
        "| zone | transition (local time) | cron | fires within 2 h of it "
        "(local time, UTC offset) |",
        "|---|---|---|---|",
    ]
    for zone_name in TABLE_ZONES:
        zone = ZoneInfo(zone_name)
        for change in transitions(zone, YEAR):
            before = (change - timedelta(seconds=1)).astimezone(zone)
            after = change.astimezone(zone)
            jump = (
                f"{after:%Y-%m-%d}: {before + timedelta(seconds=1):%H:%M} "
                f"{before:%z} becomes {after:%H:%M} {after:%z}"
            )
            for expression in TABLE_CRONS:
                cron = parse(expression)
                fires, at = [], change - WINDOW
                while (at := cron.next_after(at, zone)) < change + WINDOW:
                    fires.append(_local(at, zone))
                lines.append(
                    f"| {zone_name} | {jump} | `{expression}` | {', '.join(fires)} |"
                )
    return "\n".join(lines)


def test_the_dst_table_of_the_manual_is_what_the_evaluator_makes() -> None:
    text = DOC.read_text()
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert shown == dst_table(), (
        "docs/schedules.md's DST table differs from the evaluator's; it should be:\n"
        + dst_table()
    )


ZONES = (
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Asia/Makassar",
    "UTC",
)


@pytest.mark.parametrize("zone_name", ZONES)
def test_a_daily_cron_fires_once_every_local_day(zone_name: str) -> None:
    """Every minute of the day as a daily cron, over the days around every
    transition of 2026-2030: one fire per local day, on that day."""
    zone = ZoneInfo(zone_name)
    changes = [t for year in range(2026, 2031) for t in transitions(zone, year)]
    days = sorted(
        {(t + timedelta(days=offset)).astimezone(zone).date() for t in changes
         for offset in (-1, 0, 1)}
        or {date(2026, 3, 29), date(2026, 10, 25)}
    )  # fmt: skip
    for hour in range(24):
        for minute in range(0, 60, 5):
            cron = parse(f"{minute} {hour} * * *")
            for day in days:
                start = datetime.combine(day, datetime.min.time(), zone) - timedelta(
                    hours=12
                )
                end = datetime.combine(
                    day + timedelta(days=1), datetime.min.time(), zone
                )
                per_day: Counter[date] = Counter()
                at = start
                while (at := cron.next_after(at, zone)) < end:
                    per_day[at.astimezone(zone).date()] += 1
                assert per_day[day] == 1, (zone_name, day, hour, minute)
