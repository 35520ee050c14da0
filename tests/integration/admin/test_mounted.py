"""The admin router mounted in a backend of its own answers each kind of error as
``agnt-jobs admin`` does: the answers belong to the routes (``errors.AdminRoute``),
not to the standalone app's handlers."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from agnt_jobs.admin import AdminContext, get_context, router
from agnt_jobs.scheduler.worker import AgntApp
from agnt_jobs.settings import Settings
from tests.support.admin_data import HEADERS

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def backend(token_env: Settings, app: AgntApp, engine: Engine) -> Iterator[TestClient]:
    """A bare FastAPI backend with the admin router mounted, nothing else."""
    platform = FastAPI()
    platform.include_router(router)
    context = AdminContext(app=app, engine=engine, settings=token_env)
    platform.dependency_overrides[get_context] = lambda: context
    with TestClient(platform) as client:
        yield client


def test_each_kind_of_error_answers_from_a_mounted_router(
    backend: TestClient,
) -> None:
    unknown = backend.post("/admin/scheduler/no_such_job/run", headers=HEADERS)
    assert unknown.status_code == 404
    assert unknown.json() == {
        "detail": "unknown job 'no_such_job': 'agnt-jobs schedules list' shows them all"
    }

    refused = backend.patch(
        "/admin/scheduler/booking_reminders",
        json={"zone": "Mars/Olympus", "dry_run": True},
        headers=HEADERS,
    )
    assert refused.status_code == 422
    (detail,) = refused.json()["detail"]
    assert detail["loc"] == ["body", "zone"] and detail["input"] == "Mars/Olympus"
    assert detail["msg"].startswith("schedules.zone 'Mars/Olympus'")

    first = backend.post("/admin/scheduler/selfcheck/run", headers=HEADERS)
    assert first.status_code == 202
    job_id = first.json()["job_id"]
    second = backend.post("/admin/scheduler/selfcheck/run", headers=HEADERS)
    assert second.status_code == 409
    assert second.json() == {
        "detail": f"selfcheck already has a run waiting (job {job_id}); "
        "not deferring another",
        "waiting_job_id": job_id,
    }

    cancelled = backend.post(f"/admin/scheduler/runs/{job_id}/cancel", headers=HEADERS)
    assert cancelled.json() == {"job_id": job_id, "outcome": "cancelled"}
    again = backend.post(f"/admin/scheduler/runs/{job_id}/cancel", headers=HEADERS)
    assert again.status_code == 409 and set(again.json()) == {"detail"}
