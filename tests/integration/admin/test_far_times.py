"""Far-off times: every time the admin view accepts lies between 1970 and ten
years ahead (422 at its field past that, the page's one-line error for its forms),
and every page and answer shows whatever timestamp Postgres stores, year 10000
and later, ``infinity`` and before year 1 included, instead of a 500."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler import deploy
from agnt_jobs.scheduler.worker import AgntApp
from tests.support.admin_data import HEADERS, TOKEN, drain

FAR = "9999-12-31T23:59:59-14:00"  # year 10000 in UTC
# The largest timestamptz Postgres holds, and what lies beyond Python's years.
POSTGRES_VALUES = [
    "294276-12-31 23:59:59.999999+00",
    "infinity",
    "10000-01-01 00:00:00+00",
    "9999-12-31 23:00:00+00",
    "-infinity",
    "4713-01-01 00:00:00+00 BC",
    "0001-01-01 00:00:00+00",
]
UI = "/admin/scheduler/ui"


def _jobs(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT count(*) FROM procrastinate_jobs")
        ).scalar_one()


@pytest.mark.parametrize(
    "at",
    [
        FAR,
        "9999-12-31T23:59:59",
        "0001-01-01T00:00:00+14:00",
        (datetime.now(UTC) + timedelta(days=3660)).isoformat(),
    ],
)
def test_a_run_at_a_time_out_of_range_is_422_at_at(
    client: TestClient, engine: Engine, at: str
) -> None:
    response = client.post(
        "/admin/scheduler/dlq_cleanup/run", json={"at": at}, headers=HEADERS
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "at"]
    assert "ten years from now" in response.json()["detail"][0]["msg"]
    assert _jobs(engine) == 0


def test_a_run_nine_years_ahead_is_taken(client: TestClient, engine: Engine) -> None:
    at = (datetime.now(UTC) + timedelta(days=9 * 365)).isoformat()
    response = client.post(
        "/admin/scheduler/dlq_cleanup/run", json={"at": at}, headers=HEADERS
    )
    assert response.status_code == 202, response.text
    run = client.get(
        f"/admin/scheduler/runs/{response.json()['job_id']}", headers=HEADERS
    )
    assert run.status_code == 200


@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize(
    "value", [FAR, "0001-01-01T00:00:00+14:00", "1969-12-31T00:00Z"]
)
def test_a_window_out_of_range_is_422_at_its_end(
    client: TestClient, field: str, value: str
) -> None:
    runs = client.get("/admin/scheduler/runs", params={field: value}, headers=HEADERS)
    assert runs.status_code == 422, runs.text
    assert runs.json()["detail"][0]["loc"] == ["query", field]
    body = {"job": "selfcheck", "since": "2026-01-01T00:00Z", field: value}
    retried = client.post("/admin/scheduler/runs/retry", json=body, headers=HEADERS)
    assert retried.status_code == 422, retried.text
    assert retried.json()["detail"][0]["loc"] == ["body", field]


def _sign_in(client: TestClient) -> str:
    client.post(f"{UI}/login", data={"token": TOKEN})
    page = client.get(UI)
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


async def test_the_run_at_form_refuses_a_far_time_on_the_page(
    client: TestClient, app: AgntApp, engine: Engine
) -> None:
    async with app.open_async():
        await deploy.sync_table(app)
    csrf = _sign_in(client)
    for at in ("9999-12-31T23:59", FAR):
        answer = client.post(
            f"{UI}/dlq_cleanup/run-at",
            data={"at": at, "csrf": csrf, "back": f"{UI}/schedules/dlq_cleanup"},
        )
        assert answer.status_code == 200, answer.text[:300]
        assert "ten years from now" in answer.text
    filtered = client.get(f"{UI}/schedules/dlq_cleanup", params={"since": FAR})
    assert filtered.status_code == 200 and "ten years from now" in filtered.text
    assert _jobs(engine) == 0


@pytest.fixture
async def far_rows(client: TestClient, app: AgntApp, engine: Engine) -> dict[str, int]:
    """A run of dlq_cleanup waiting at each far value, and history, events and a
    worker's heartbeat at them too."""
    async with app.open_async():
        await app.tasks["selfcheck"].defer_async()
    await drain(app)
    ids = {}
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for value in POSTGRES_VALUES:
        deferred = client.post(
            "/admin/scheduler/dlq_cleanup/run", json={"at": soon}, headers=HEADERS
        )
        assert deferred.status_code == 202, deferred.text
        ids[value] = deferred.json()["job_id"]
    with engine.begin() as connection:
        for value, job_id in ids.items():
            connection.execute(
                sa.text(
                    "UPDATE procrastinate_jobs "
                    "SET scheduled_at = CAST(:at AS timestamptz) "
                    "WHERE id = :id"
                ),
                {"at": value, "id": job_id},
            )
            connection.execute(
                sa.text(
                    "UPDATE procrastinate_events SET at = CAST(:at AS timestamptz) "
                    "WHERE job_id = :id"
                ),
                {"at": value, "id": job_id},
            )
        connection.execute(
            sa.text(
                "UPDATE job_runs SET finished_at = 'infinity', "
                "started_at = '294276-12-31 23:59:59.999999+00'"
            )
        )
        connection.execute(
            sa.text("UPDATE schedule_ticks SET tick_at = '10000-01-01 00:00:00+00'")
        )
    return ids


def test_every_page_and_answer_shows_far_timestamps(
    client: TestClient, far_rows: dict[str, int]
) -> None:
    paths = [
        "/admin/scheduler",
        "/admin/scheduler/runs",
        "/admin/scheduler/runs?job=selfcheck",
        "/metrics",
        UI,
        f"{UI}/schedules/dlq_cleanup",
        f"{UI}/queues",
    ]
    for job_id in far_rows.values():
        paths += [f"/admin/scheduler/runs/{job_id}", f"{UI}/runs/{job_id}"]
    client.post(f"{UI}/login", data={"token": TOKEN})
    for path in paths:
        response = client.get(path, headers=HEADERS)
        assert response.status_code == 200, (path, response.text[:500])
    largest = client.get(
        f"/admin/scheduler/runs/{far_rows[POSTGRES_VALUES[0]]}", headers=HEADERS
    )
    assert largest.json()["events"][0]["at"] == "9999-12-31T23:59:59.999999Z"
    page = client.get(f"{UI}/schedules/dlq_cleanup").text
    assert "294276-12-31 23:59:59.999999+00" in page
    assert "infinity" in page
