"""The run history over HTTP (filters, keyset pages, one run with its events) and
the manual actions (run now, pause, resume), on runs real workers ran."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler import deploy, maintenance
from agnt_jobs.scheduler.worker import AgntApp
from agnt_jobs.settings import Settings
from tests.support.admin_data import (
    EXPLODE,
    HEADERS,
    TIDY,
    defer_tick,
    drain,
    make_app,
)
from tests.support.jobs import context

RUNS = "/admin/scheduler/runs"


async def _history(
    db_url: str, engine: Engine, client_for: Callable[[AgntApp], TestClient]
) -> tuple[AgntApp, TestClient]:
    """Seven runs: tidy five times by hand and once on its tick, explode once."""
    app = make_app(db_url, [TIDY, EXPLODE], failing=[EXPLODE.id])
    client = client_for(app)
    async with app.open_async():
        await deploy.sync_table(app)
    for _ in range(5):
        assert (
            client.post("/admin/scheduler/tidy/run", headers=HEADERS).status_code == 202
        )
        await drain(app)
    assert (
        client.post("/admin/scheduler/explode/run", headers=HEADERS).status_code == 202
    )
    assert defer_tick(engine, TIDY, TIDY.latest_at(datetime.now(UTC))) == "deferred"
    await drain(app)
    return app, client


def _get(client: TestClient, **params: object) -> dict:
    response = client.get(RUNS, headers=HEADERS, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _keys(runs: list[dict]) -> list[tuple[int, int]]:
    return [(run["job_id"], run["attempt"]) for run in runs]


async def test_filters_and_pages_across_the_history(
    db_url: str, engine: Engine, client_for: Callable[[AgntApp], TestClient]
) -> None:
    _, client = await _history(db_url, engine, client_for)
    everything = _get(client)
    assert everything["next_cursor"] is None
    runs = everything["runs"]
    assert len(runs) == 7
    starts = [(run["started_at"], run["job_id"]) for run in runs]
    assert starts == sorted(starts, reverse=True)
    newest = runs[0]
    assert (newest["job"], newest["trigger"], newest["status"]) == (
        "tidy",
        "schedule",
        "succeeded",
    )
    assert newest["scheduled_tick"] is not None
    assert newest["result"] == {"tidied": 3} and newest["worker_name"] == "worker"
    assert newest["duration_seconds"] >= 0

    failed = _get(client, status="failed")["runs"]
    assert [(run["job"], run["trigger"]) for run in failed] == [("explode", "manual")]
    assert "RuntimeError: venue gateway said no" in failed[0]["error"]
    assert len(_get(client, job="tidy")["runs"]) == 6
    assert _get(client, job="tidy", status="failed")["runs"] == []

    # Pages of two: every run once, in the same order, then no cursor.
    seen, cursor, pages = [], None, 0
    while True:
        page = _get(client, limit=2, **({"cursor": cursor} if cursor else {}))
        pages += 1
        seen += page["runs"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["runs"]) == 2
    assert pages == 4 and _keys(seen) == _keys(runs)
    # The cursor carries across filters' pages too.
    first = _get(client, job="tidy", limit=4)
    rest = _get(client, job="tidy", limit=4, cursor=first["next_cursor"])
    assert _keys(first["runs"] + rest["runs"]) == _keys(
        _get(client, job="tidy")["runs"]
    )
    assert rest["next_cursor"] is None

    # since is inclusive, until exclusive, on the start of each attempt.
    middle = datetime.fromisoformat(runs[3]["started_at"])
    newer = _get(client, since=middle.isoformat())["runs"]
    older = _get(client, until=middle.isoformat())["runs"]
    assert _keys(newer) == _keys(runs[:4]) and _keys(older) == _keys(runs[4:])
    window = _get(
        client,
        since=datetime.fromisoformat(runs[5]["started_at"]).isoformat(),
        until=middle.isoformat(),
    )
    assert _keys(window["runs"]) == _keys(runs[4:6])
    # Without an offset an instant is WITA (UTC+8).
    naive = middle.astimezone(UTC).replace(tzinfo=None) + timedelta(hours=8)
    assert _keys(_get(client, since=naive.isoformat())["runs"]) == _keys(runs[:4])


async def test_bad_filters_are_422_with_a_message(
    db_url: str, engine: Engine, client_for: Callable[[AgntApp], TestClient]
) -> None:
    _, client = await _history(db_url, engine, client_for)
    cases = {
        "job": ({"job": "no_such_job"}, "unknown job 'no_such_job'"),
        "status": ({"status": "exploded"}, "Input should be"),
        "since": ({"since": "yesterday"}, "valid datetime"),
        "until": (
            {"since": "2028-01-02T00:00:00Z", "until": "2028-01-01T00:00:00Z"},
            "until must be later than since",
        ),
        "cursor": ({"cursor": "bm90LWEtY3Vyc29y"}, "not a cursor from this endpoint"),
        "limit": ({"limit": 0}, "greater than or equal to 1"),
    }
    for field, (params, message) in cases.items():
        response = client.get(RUNS, headers=HEADERS, params=params)
        assert response.status_code == 422, field
        [error] = response.json()["detail"]
        assert error["loc"] == ["query", field] and message in error["msg"], error
    for garbage in ("", "!!!", "W10", "WyJ4IiwxLDFd", "WyIyMDI4LTAxLTAxIiwxLDFd"):
        response = client.get(RUNS, headers=HEADERS, params={"cursor": garbage})
        assert response.status_code == 422, garbage
    # A job that has left the registry but is in the history is a valid filter.
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE job_runs SET task_name = 'old_job'"))
    assert len(_get(client, job="old_job")["runs"]) == 7


async def test_one_run_with_its_attempts_events_and_error(
    db_url: str,
    engine: Engine,
    env: Settings,
    client_for: Callable[[AgntApp], TestClient],
) -> None:
    _, client = await _history(db_url, engine, client_for)
    [failed] = _get(client, status="failed")["runs"]
    response = client.get(f"{RUNS}/{failed['job_id']}", headers=HEADERS)
    assert response.status_code == 200
    run = response.json()
    assert (run["job"], run["status"], run["trigger"]) == (
        "explode",
        "failed",
        "manual",
    )
    assert "RuntimeError: venue gateway said no" in run["error"]
    assert [event["type"] for event in run["events"]] == [
        "deferred",
        "started",
        "failed",
    ]
    assert [attempt["attempt"] for attempt in run["attempts"]] == [1]
    assert run["duration_seconds"] >= 0

    scheduled = _get(client, job="tidy")["runs"][0]
    detail = client.get(f"{RUNS}/{scheduled['job_id']}", headers=HEADERS).json()
    assert detail["trigger"] == "schedule" and detail["scheduled_tick"] is not None
    assert detail["result"] == {"tidied": 3} and detail["error"] is None

    # Past the job retention the queue forgets it; the history still answers.
    later = datetime.now(UTC) + timedelta(days=env.job_retention_days + 1)
    maintenance.clean_finished_jobs(context(engine, env, now=later))
    kept = client.get(f"{RUNS}/{failed['job_id']}", headers=HEADERS).json()
    assert kept["events"] == [] and kept["status"] == "failed"
    assert "venue gateway said no" in kept["error"]

    for missing in (10**9, 2**63 - 1):
        response = client.get(f"{RUNS}/{missing}", headers=HEADERS)
        assert response.status_code == 404
        assert response.json() == {"detail": f"no run {missing}"}
    for invalid in ("0", "-1", "abc", str(2**63)):
        assert client.get(f"{RUNS}/{invalid}", headers=HEADERS).status_code == 422


async def test_run_now_then_409_while_it_waits(
    client: TestClient, app: AgntApp, engine: Engine
) -> None:
    first = client.post("/admin/scheduler/selfcheck/run", headers=HEADERS)
    assert first.status_code == 202
    job_id = first.json()["job_id"]
    assert first.json() == {"job": "selfcheck", "job_id": job_id}
    waiting = client.get(f"{RUNS}/{job_id}", headers=HEADERS).json()
    assert waiting["status"] == "todo" and waiting["attempts"] == []
    assert [event["type"] for event in waiting["events"]] == ["deferred"]

    second = client.post("/admin/scheduler/selfcheck/run", headers=HEADERS)
    assert second.status_code == 409
    assert second.json() == {
        "detail": f"selfcheck already has a run waiting (job {job_id}); "
        "not deferring another",
        "waiting_job_id": job_id,
    }
    await drain(app)
    done = client.get(f"{RUNS}/{job_id}", headers=HEADERS).json()
    assert done["status"] == "succeeded" and set(done["result"]) == {"database_ms"}
    again = client.post("/admin/scheduler/selfcheck/run", headers=HEADERS)
    assert again.status_code == 202 and again.json()["job_id"] > job_id

    for path, message in [
        ("/admin/scheduler/nope/run", "unknown job 'nope'"),
        ("/admin/scheduler/nope/pause", "unknown schedule 'nope'"),
        ("/admin/scheduler/nope/resume", "unknown schedule 'nope'"),
    ]:
        response = client.post(path, headers=HEADERS)
        assert response.status_code == 404, path
        assert message in response.json()["detail"]
    with engine.connect() as connection:
        assert (
            connection.execute(
                sa.text("SELECT count(*) FROM procrastinate_jobs")
            ).scalar_one()
            == 2
        )


def test_pause_and_resume_are_what_workers_read(
    client: TestClient, engine: Engine
) -> None:
    def enabled() -> bool | None:
        with engine.connect() as connection:
            return connection.execute(
                sa.text("SELECT enabled FROM schedules WHERE id = 'monthly_invoice'")
            ).scalar_one_or_none()

    paused = client.post("/admin/scheduler/monthly_invoice/pause", headers=HEADERS)
    assert paused.status_code == 200
    assert paused.json() == {"id": "monthly_invoice", "enabled": False}
    assert enabled() is False
    # Idempotent: pausing a paused schedule changes nothing and is no error.
    assert (
        client.post(
            "/admin/scheduler/monthly_invoice/pause", headers=HEADERS
        ).status_code
        == 200
    )
    registry = client.get("/admin/scheduler", headers=HEADERS).json()
    [entry] = [e for e in registry["schedules"] if e["id"] == "monthly_invoice"]
    assert (entry["enabled"], entry["health"]) == (False, "paused")

    resumed = client.post("/admin/scheduler/monthly_invoice/resume", headers=HEADERS)
    assert resumed.json() == {"id": "monthly_invoice", "enabled": True}
    assert enabled() is True
