"""What a benchmark produces: measurements, each against a baseline taken in the same
run, printed as one table and written as one JSON document with the machine it ran
on (figures from a shared machine are noisy; ratios from one run much less so)."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

Figure = float | int | str | bool | None


@dataclass
class Measurement:
    """One line of the table.

    ``value`` is the headline figure (``unit``), ``baseline`` the same figure for
    the baseline, ``ratio`` value/baseline; ``met`` whether the goal holds (None
    when there is no goal or it could not be judged). ``details`` keeps every
    other figure for the JSON file.
    """

    family: str
    name: str
    value: Figure
    unit: str
    baseline: Figure = None
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None or baseline == 0:
        return None
    return round(value / baseline, 3)


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile (p50 = 0.5, p99 = 0.99) of ``values``."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _cell(value: Figure) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


COLUMNS = ("family", "name", "value", "unit", "baseline", "ratio", "goal", "met")


def format_table(measurements: list[Measurement]) -> str:
    rows = [list(COLUMNS)]
    for m in measurements:
        rows.append(
            [
                m.family,
                m.name,
                _cell(m.value),
                m.unit,
                _cell(m.baseline),
                _cell(m.ratio),
                m.goal,
                _cell(m.met),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for number, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.ljust(width) for cell, width in zip(row, widths, strict=True)
            )
        )
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    notes = [f"- {m.family}/{m.name}: {m.note}" for m in measurements if m.note]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(line.rstrip() for line in lines)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine() -> dict[str, Any]:
    """Where the figures come from: they mean little without it."""
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "procrastinate": metadata.version("procrastinate"),
        "commit": _git_commit(),
    }


def write_json(
    path: Path, measurements: list[Measurement], options: dict[str, Any]
) -> None:
    document = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": options,
        "machine": machine(),
        "measurements": [asdict(m) for m in measurements],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
