"""deploy/grafana's dashboard asks only for what /metrics serves: every metric
its queries name is one the exporter serves (read from a real scrape) and the
manual documents, every family served has a panel, and every query is PromQL
that Prometheus' own promtool accepts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.support.admin_data import HEADERS

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "deploy" / "grafana" / "agnt-jobs.json"
METRIC = re.compile(r"\bagnt_[a-z0-9_]+\b")
# What each family type exposes as series names (Prometheus' text format).
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def _queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def _served(client: TestClient) -> dict[str, str]:
    """Each family the exporter serves, by its documented name, and its type."""
    scrape = client.get("/metrics", headers=HEADERS)
    assert scrape.status_code == 200
    return {
        family.name + ("_total" if family.type == "counter" else ""): family.type
        for family in text_string_to_metric_families(scrape.text)
        if family.name.startswith("agnt_")
    }


def _documented() -> set[str]:
    table = (ROOT / "docs" / "metrics.md").read_text()
    return set(re.findall(r"^\| `(agnt_[a-z0-9_]+)` \|", table, re.MULTILINE))


def _series(family: str, kind: str) -> set[str]:
    base = family.removesuffix("_total")
    return {base + suffix for suffix in SUFFIXES[kind]}


def test_every_query_names_a_metric_the_exporter_serves(client: TestClient) -> None:
    served = _served(client)
    assert set(served) == _documented()
    series = {name for family, kind in served.items() for name in _series(family, kind)}
    named = {name for query in _queries() for name in METRIC.findall(query)}
    assert named, "the dashboard names no metric"
    assert named - series == set()


def test_every_family_served_has_a_panel(client: TestClient) -> None:
    served = _served(client)
    named = {name for query in _queries() for name in METRIC.findall(query)}
    without_panel = {
        family for family, kind in served.items() if not _series(family, kind) & named
    }
    assert without_panel == set()


def test_every_query_is_promql_that_promtool_accepts(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("needs promtool (Debian's prometheus package; .ci/run installs it)")
    # Grafana's own variable, as Grafana substitutes it before the query is sent.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {
                        "record": f"dashboard:query_{n}",
                        "expr": query.replace("$__rate_interval", "2m"),
                    }
                    for n, query in enumerate(_queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_asks_for_its_data_source() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    (variable,) = dashboard["templating"]["list"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"]
