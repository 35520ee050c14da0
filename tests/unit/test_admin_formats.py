"""How the admin pages write durations, instants and crons."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from agnt_jobs.admin import chart, formats

WITA = ZoneInfo("Asia/Makassar")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.0, "0 ms"),
        (0.0004, "0 ms"),
        (0.34, "340 ms"),
        (0.9994, "999 ms"),
        (1.0, "1.0 s"),
        (12.44, "12.4 s"),
        (59.9, "59.9 s"),
        (60.0, "1 min 00 s"),
        (185.2, "3 min 05 s"),
        (3600.0, "1 h 00 min"),
        (7325.0, "2 h 02 min"),
    ],
)
def test_durations_keep_the_precision_that_tells(
    seconds: float | None, text: str
) -> None:
    assert formats.duration(seconds) == text


def test_an_instant_is_wita_with_utc_on_hover() -> None:
    at = datetime(2026, 12, 24, 1, 0, 5, tzinfo=UTC)
    assert str(formats.when(at, WITA)) == (
        '<time datetime="2026-12-24T01:00:05Z" title="2026-12-24 01:00:05 UTC">'
        "2026-12-24 09:00</time>"
    )
    assert "09:00:05</time>" in str(formats.when(at, WITA, seconds=True))
    assert str(formats.when(None, WITA)) == "-"


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("*/15 * * * *", "Every 15 minutes"),
        ("0 4 * * 1", "At 04:00, only on Monday"),
        ("* * * * *", "Every minute"),
        ("0 2 1 * *", "At 02:00, on day 1 of the month"),
        ("not a cron", "not a cron"),
    ],
)
def test_crons_in_words(cron: str, words: str) -> None:
    assert formats.cron_words(cron) == words


def test_the_duration_chart_escapes_and_scales() -> None:
    runs = [
        {"started_at": datetime(2026, 12, 1, n, tzinfo=UTC), "seconds": s, "status": st}
        for n, (s, st) in enumerate([(2.0, "failed"), (1.0, "succeeded"), (0.5, "x<y")])
    ]
    svg = str(chart.durations_svg(runs, WITA))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('class="run"') == 3
    assert "x<y" not in svg and "x&lt;y" in svg
    # The longest run is the full height of the plot; oldest is drawn first.
    heights = [float(part.split('"')[0]) for part in svg.split('height="')[2:]]
    assert heights[2] == max(heights)
    assert "No finished run" in str(chart.durations_svg([], WITA))
