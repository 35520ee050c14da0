"""The admin API's changes: a schedule edited, dry-run and reset (Postgres's own
refusal as a 422, the audit row's source admin), a run at a time, a run cancelled
and retried (404 for an unknown run, 409 for one whose state forbids it), and each
of these refused without the token."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler import deploy
from agnt_jobs.scheduler.worker import AgntApp
from tests.support.admin_data import EXPLODE, HEADERS, TIDY, drain, make_app

NEXT_YEAR = datetime.now(UTC).year + 1
CHANGES = [
    ("patch", "/admin/scheduler/tidy", {"cron": "7 3 * * *"}),
    ("post", "/admin/scheduler/tidy/reset", None),
    ("post", "/admin/scheduler/runs/1/cancel", None),
    ("post", "/admin/scheduler/runs/1/retry", None),
    ("post", "/admin/scheduler/runs/retry", {"job": "tidy", "since": "2026-01-01"}),
    ("post", "/admin/scheduler/tidy/run", {"at": f"{NEXT_YEAR}-01-01T00:00:00"}),
]


@pytest.fixture
async def client(
    db_url: str, client_for: Callable[[AgntApp], TestClient]
) -> TestClient:
    app = make_app(db_url, [TIDY, EXPLODE], failing=[EXPLODE.id])
    async with app.open_async():
        await deploy.sync_table(app)
    test_client = client_for(app)
    test_client.agnt_app = app  # type: ignore[attr-defined]
    return test_client


def rows(engine: Engine, sql: str) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(sql))]


@pytest.mark.parametrize(("method", "path", "body"), CHANGES)
def test_each_change_needs_the_token(
    client: TestClient, engine: Engine, method: str, path: str, body: dict | None
) -> None:
    before = rows(engine, "SELECT * FROM schedules ORDER BY id")
    for headers, code in (({}, 401), ({"X-Internal-Token": "w" * 40}, 403)):
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == code, response.text
    assert rows(engine, "SELECT * FROM schedules ORDER BY id") == before
    assert rows(engine, "SELECT count(*) FROM procrastinate_jobs") == [(0,)]


def test_edit_dry_run_refusal_and_reset(client: TestClient, engine: Engine) -> None:
    dry = client.patch(
        "/admin/scheduler/tidy",
        json={"cron": "0 9 * * 1-5", "dry_run": True},
        headers=HEADERS,
    )
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True
    assert len(dry.json()["next_runs"]) == 5
    assert all(t.endswith("T09:00:00+08:00") for t in dry.json()["next_runs_wita"])
    assert rows(engine, "SELECT cron FROM schedules WHERE id = 'tidy'") == [
        ("*/5 * * * *",)
    ]

    refused = client.patch(
        "/admin/scheduler/tidy", json={"cron": "61 * * * *"}, headers=HEADERS
    )
    assert refused.status_code == 422
    [problem] = refused.json()["detail"]
    assert problem["loc"] == ["body", "cron"]
    assert problem["msg"].startswith(
        "schedules.cron '61 * * * *' is not a valid cron: the minute field"
    )
    nul = client.patch(
        "/admin/scheduler/tidy", json={"zone": "Asia/Maka\x00ssar"}, headers=HEADERS
    )
    assert nul.status_code == 422
    assert (
        client.patch(
            "/admin/scheduler/nope", json={"cron": "* * * * *"}, headers=HEADERS
        ).status_code
        == 404
    )

    done = client.patch(
        "/admin/scheduler/tidy",
        json={"cron": "7 3 * * *", "timeout": "10 minutes", "by": "ana"},
        headers=HEADERS,
    )
    assert done.status_code == 200, done.text
    assert (done.json()["cron"], done.json()["overridden"]) == ("7 3 * * *", True)
    [(by, source)] = rows(
        engine,
        "SELECT changed_by, source FROM schedule_changes WHERE schedule_id = 'tidy' "
        "AND source <> 'deploy'",
    )
    assert (by, source) == ("ana via admin token from testclient", "admin")
    registry_body = client.get("/admin/scheduler", headers=HEADERS).json()
    [entry] = [e for e in registry_body["schedules"] if e["id"] == "tidy"]
    assert (entry["trigger"], entry["overridden"]) == ("7 3 * * *", True)
    assert entry["declared"]["cron"] == "*/5 * * * *"
    assert entry["timeout_seconds"] == 600

    reset = client.post("/admin/scheduler/tidy/reset", headers=HEADERS)
    assert reset.status_code == 200, reset.text
    assert (reset.json()["cron"], reset.json()["overridden"]) == ("*/5 * * * *", False)


async def test_run_at_cancel_and_retry(client: TestClient, engine: Engine) -> None:
    at = client.post(
        "/admin/scheduler/tidy/run",
        json={"at": f"{NEXT_YEAR}-12-24T09:00:00"},
        headers=HEADERS,
    )
    assert at.status_code == 202, at.text
    waiting = at.json()["job_id"]
    [(scheduled_at, status)] = rows(
        engine,
        f"SELECT scheduled_at, status FROM job_run_audit WHERE job_id = {waiting}",
    )
    assert scheduled_at == datetime(NEXT_YEAR, 12, 24, 1, 0, tzinfo=UTC)
    assert status == "todo"
    past = client.post(
        "/admin/scheduler/tidy/run", json={"at": "2001-01-01T00:00:00"}, headers=HEADERS
    )
    assert past.status_code == 422

    cancelled = client.post(f"/admin/scheduler/runs/{waiting}/cancel", headers=HEADERS)
    assert cancelled.json() == {"job_id": waiting, "outcome": "cancelled"}
    again = client.post(f"/admin/scheduler/runs/{waiting}/cancel", headers=HEADERS)
    assert again.status_code == 409
    assert "has already ended (cancelled)" in again.json()["detail"]
    assert (
        client.post("/admin/scheduler/runs/999999/cancel", headers=HEADERS).status_code
        == 404
    )

    failing = client.post("/admin/scheduler/explode/run", headers=HEADERS).json()
    await drain(client.agnt_app)  # type: ignore[attr-defined]
    retried = client.post(
        f"/admin/scheduler/runs/{failing['job_id']}/retry", headers=HEADERS
    )
    assert retried.status_code == 202, retried.text
    assert (
        client.post(
            f"/admin/scheduler/runs/{failing['job_id']}/retry", headers=HEADERS
        ).status_code
        == 409
    )
    bulk = client.post(
        "/admin/scheduler/runs/retry",
        json={"job": "tidy", "since": "2000-01-01T00:00:00"},
        headers=HEADERS,
    )
    assert bulk.json() == {
        "retried": [
            {"job_id": waiting, "new_job_id": bulk.json()["retried"][0]["new_job_id"]}
        ]
    }
    unknown = client.post(
        "/admin/scheduler/runs/retry",
        json={"job": "nope", "since": "2000-01-01T00:00:00"},
        headers=HEADERS,
    )
    assert unknown.status_code == 404
    assert rows(engine, "SELECT action, source FROM job_run_actions ORDER BY id") == [
        ("run_at", "admin"),
        ("cancel", "admin"),
        ("retry", "admin"),
        ("retry", "admin"),
    ]
