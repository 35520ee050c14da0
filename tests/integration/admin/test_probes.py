"""The admin view answers the same two probes as a worker, without a token and
without saying more than whether, and roughly why not."""

from __future__ import annotations

import logging
import socket
import warnings

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs import settings
from agnt_jobs.admin import AdminContext, create_app
from agnt_jobs.db.url import create_engine
from agnt_jobs.scheduler.worker import AgntApp

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_probes_answer_without_a_token(client: TestClient) -> None:
    live, ready = client.get("/livez"), client.get("/readyz")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
    assert ready.headers["cache-control"] == "no-store"


def test_a_database_behind_the_code_is_not_ready(
    client: TestClient, engine: Engine
) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "is at revision 0001" in ready.json()["reason"]
    assert client.get("/livez").status_code == 200


def test_a_database_that_cannot_be_reached_is_not_ready_and_its_detail_is_logged(
    token_env: settings.Settings,
    app: AgntApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    gone = create_engine(
        f"postgresql://agnt_secret_user@127.0.0.1:{port}/agnt?connect_timeout=1"
    )
    context = AdminContext(app=app, engine=gone, settings=token_env)
    with TestClient(create_app(context)) as client, caplog.at_level(logging.WARNING):
        ready = client.get("/readyz")
        live = client.get("/livez")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "failing",
        "reason": "the database cannot be reached",
    }
    assert "agnt_secret_user" not in ready.text
    assert any(
        getattr(record, "action", None) == "admin_not_ready"
        for record in caplog.records
    )
    assert live.status_code == 200
