"""The benchmark's arithmetic and its table, with no database."""

from __future__ import annotations

import json
from pathlib import Path

from agnt_jobs.bench.queue import jobs_for
from agnt_jobs.bench.report import (
    Measurement,
    format_table,
    percentile,
    ratio,
    write_json,
)
from agnt_jobs.datagen.fixtures import Sizes


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) is None


def test_ratio_needs_both_figures() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None
    assert ratio(1.0, 0) is None


def test_table_lines_up_and_lists_notes() -> None:
    table = format_table(
        [
            Measurement(
                "queue", "throughput", 312.4, "jobs/s", 300.0, 1.041, "x", True
            ),
            Measurement("jobs", "dlq_cleanup", 0.0123, "s", None, None, "", False, "n"),
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == [
        "family",
        "name",
        "value",
        "unit",
        "baseline",
        "ratio",
        "goal",
        "met",
    ]
    assert set(lines[1]) <= {"-", " "}
    assert "312" in lines[2] and "1.04" in lines[2] and lines[2].endswith("yes")
    assert lines[3].endswith("NO") and " - " in lines[3]
    assert lines[-1] == "- jobs/dlq_cleanup: n"


def test_json_has_options_machine_and_every_figure(tmp_path: Path) -> None:
    path = tmp_path / "out" / "bench.json"
    write_json(path, [Measurement("fanout", "c8", 900.0, "msg/s")], {"scale": 3})
    document = json.loads(path.read_text())
    assert document["options"] == {"scale": 3}
    assert document["machine"]["cpus"] >= 1
    assert document["measurements"][0]["value"] == 900.0


def test_due_work_does_not_grow_with_the_scale() -> None:
    small, large = Sizes(10, 5000), Sizes(100, 5000)
    assert large.bookings == 10 * small.bookings == 1_000_000
    assert large.drift == small.drift
    assert large.http_due == small.http_due
    assert jobs_for(1) == 100 and jobs_for(1000) == 5000
