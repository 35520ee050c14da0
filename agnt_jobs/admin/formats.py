"""How the admin pages write times, durations and crons, in one place so that
every page says them the same way: an instant in the business zone (WITA) with
its UTC on hover, a duration with the precision that tells something (340 ms,
12.4 s, 3 min 05 s), a cron in words with its zone. An instant Python cannot
show in a zone (past year 9999 or before year 1, ``infinity``: Postgres stores
them) is written as Postgres or UTC writes it, never an error."""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime, timezone
from zoneinfo import ZoneInfo

from cron_descriptor import ExpressionDescriptor, Options
from markupsafe import Markup

from agnt_jobs.db.far import FarInstant


def duration(seconds: float | None) -> str:
    """Milliseconds under a second, tenths of seconds under a minute, then minutes
    and seconds (and hours past an hour)."""
    if seconds is None or math.isnan(seconds):
        return "-"
    if math.isinf(seconds):
        return "unbounded"  # a span to or from a time Postgres calls infinity
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


def _far(value: datetime) -> str | None:
    """How to write ``value`` when it has no wall-clock time in every zone: its
    Postgres text, or its UTC; None when it has."""
    if isinstance(value, FarInstant):
        return value.text
    try:
        value.astimezone(UTC)
        value.astimezone(UTC).astimezone(timezone.max)
        value.astimezone(UTC).astimezone(timezone.min)
    except OverflowError:
        return f"{value:%Y-%m-%d %H:%M:%S%z}"
    return None


def clock(value: datetime, zone: ZoneInfo, shape: str) -> str:
    """``value`` in ``zone`` as ``shape`` (strftime), or as ``_far`` says."""
    far = _far(value)
    return far if far is not None else value.astimezone(zone).strftime(shape)


def when(value: datetime | None, zone: ZoneInfo, seconds: bool = False) -> Markup:
    """``<time>`` in ``zone``, its ISO instant in ``datetime`` and its UTC in the
    title (shown on hover)."""
    if value is None:
        return Markup("-")
    far = _far(value)
    if far is not None:
        return Markup('<time title="{}">{}</time>').format(
            "beyond the dates a page can show", far
        )
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
