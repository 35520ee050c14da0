"""A schedule's recent run durations as an inline SVG bar chart, drawn on the
server: no script, nothing loaded from elsewhere, every text escaped. One bar per
run, oldest on the left, its height the run's duration on a scale from 0 to the
longest shown, its colour the run's status; hover a bar for its start, duration
and status."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup

from agnt_jobs.admin.formats import clock, duration

WIDTH = 720
HEIGHT = 140
LEFT = 56  # room for the scale's labels
TOP = 8
BOTTOM = 18
COLOURS = {
    "succeeded": "#1f8f4e",
    "failed": "#c62828",
    "timed_out": "#c62828",
    "running": "#c98a00",
    "cancelled": "#6b7280",
    "aborted": "#6b7280",
    "stopped": "#6b7280",
}


def durations_svg(runs: Sequence[dict[str, Any]], zone: ZoneInfo) -> Markup:
    """``runs``: dicts with ``started_at``, ``seconds`` and ``status``, newest
    first (as the history reads them)."""
    # A run whose span has no measure (it ends at infinity) has no bar.
    shown = [run for run in reversed(runs) if math.isfinite(float(run["seconds"]))]
    if not shown:
        return Markup('<p class="small">No finished run yet.</p>')
    longest = max(float(run["seconds"]) for run in shown) or 1.0
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT) / len(shown)
    bar = max(1.0, slot * 0.8)
    parts = [
        Markup(
            '<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="{w}" '
            'height="{h}" xmlns="http://www.w3.org/2000/svg">'
        ).format(w=WIDTH, h=HEIGHT),
        Markup("<title>{}</title>").format(
            f"Durations of the last {len(shown)} runs, longest {duration(longest)}"
        ),
        Markup(
            '<line x1="{x}" y1="{top}" x2="{x}" y2="{base}" stroke="#cbd5e1"/>'
            '<line x1="{x}" y1="{base}" x2="{w}" y2="{base}" stroke="#cbd5e1"/>'
            '<text x="{lx}" y="{ty}" text-anchor="end" font-size="11" '
            'fill="#6b7280">{top_label}</text>'
            '<text x="{lx}" y="{base}" text-anchor="end" font-size="11" '
            'fill="#6b7280">0</text>'
        ).format(
            x=LEFT,
            top=TOP,
            base=TOP + plot_height,
            w=WIDTH,
            lx=LEFT - 6,
            ty=TOP + 10,
            top_label=duration(longest),
        ),
    ]
    for index, run in enumerate(shown):
        seconds = float(run["seconds"])
        height = max(1.0, plot_height * seconds / longest)
        started: datetime = run["started_at"]
        label = (
            f"{clock(started, zone, '%Y-%m-%d %H:%M:%S')} · "
            f"{duration(seconds)} · {run['status']}"
        )
        parts.append(
            Markup(
                '<rect class="run" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" '
                'height="{h:.1f}" fill="{fill}" data-status="{status}">'
                "<title>{label}</title></rect>"
            ).format(
                x=LEFT + index * slot + (slot - bar) / 2,
                y=TOP + plot_height - height,
                w=bar,
                h=height,
                fill=COLOURS.get(run["status"], "#6b7280"),
                status=run["status"],
                label=label,
            )
        )
    parts.append(
        Markup(
            '<text x="{x}" y="{y}" font-size="11" fill="#6b7280">{first}</text>'
            '<text x="{w}" y="{y}" text-anchor="end" font-size="11" '
            'fill="#6b7280">{last}</text></svg>'
        ).format(
            x=LEFT,
            y=HEIGHT - 4,
            w=WIDTH,
            first=clock(shown[0]["started_at"], zone, "%d %b %H:%M"),
            last=clock(shown[-1]["started_at"], zone, "%d %b %H:%M"),
        )
    )
    return Markup("").join(parts)
