"""How the admin pages write times, durations and crons, in one place so that
every page says them the same way: an instant in the business zone (WITA) with
its UTC on hover, a duration with the precision that tells something (340 ms,
12.4 s, 3 min 05 s), a cron in words with its zone."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from cron_descriptor import ExpressionDescriptor, Options
from markupsafe import Markup


def duration(seconds: float | None) -> str:
    """Milliseconds under a second, tenths of seconds under a minute, then minutes
    and seconds (and hours past an hour)."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"


def when(value: datetime | None, zone: ZoneInfo, seconds: bool = False) -> Markup:
    """``<time>`` in ``zone``, its ISO instant in ``datetime`` and its UTC in the
    title (shown on hover)."""
    if value is None:
        return Markup("-")
    shape = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    utc = value.astimezone(UTC)
    return Markup('<time datetime="{}" title="{} UTC">{}</time>').format(
        utc.isoformat().replace("+00:00", "Z"),
        utc.strftime("%Y-%m-%d %H:%M:%S"),
        value.astimezone(zone).strftime(shape),
    )


@functools.cache
def _descriptor_options() -> Options:
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    return options


def cron_words(cron: str) -> str:
    """The cron in English ("Every 15 minutes", "At 04:00, only on Monday"); the
    expression itself when it cannot be described."""
    try:
        return str(ExpressionDescriptor(cron, _descriptor_options()).get_description())
    except Exception:  # the library raises its own types, and ValueError
        return cron


def zone_label(zone: str, business_zone: str) -> str:
    return "WITA" if zone == business_zone else zone
