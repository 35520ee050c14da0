"""``worker_lifespan``: the one-process form for a FastAPI backend that used to run
its scheduler in its lifespan hook. The application serves the admin view and a
worker beside it runs jobs; both stop when the application does."""

from __future__ import annotations

import time

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from agnt_jobs.admin.beside import worker_lifespan
from agnt_jobs.app import app as jobs
from agnt_jobs.scheduler import run_control
from agnt_jobs.settings import Settings
from tests.support.admin_data import HEADERS


def test_an_app_with_the_lifespan_serves_the_view_and_runs_jobs(
    token_env: Settings, engine: Engine
) -> None:
    backend = FastAPI(lifespan=worker_lifespan)

    @backend.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    with TestClient(backend) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/admin/scheduler", headers=HEADERS).status_code == 200
        job_id = run_control.run_now(jobs, engine, token_env, "prune_error_logs")
        deadline = time.monotonic() + 30
        while (state := run_control.job_state(engine, job_id))["status"] != "succeeded":
            assert state["status"] in ("todo", "doing"), state
            assert time.monotonic() < deadline, "the worker beside never ran it"
            time.sleep(0.1)
    assert run_control.job_state(engine, job_id)["status"] == "succeeded"
