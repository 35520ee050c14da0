"""Fixtures of the admin view's tests: settings with the token, and HTTP clients on
the standalone admin app (the process's own App, or a small App of the test's)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.engine import Engine

from agnt_jobs import settings
from agnt_jobs.admin import AdminContext, create_app
from agnt_jobs.scheduler.worker import AgntApp
from tests.support.admin_data import TOKEN

with warnings.catch_warnings():
    # Starlette would rather have httpx2; httpx is what is installed.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def token_env(
    env: settings.Settings, monkeypatch: pytest.MonkeyPatch
) -> settings.Settings:
    """Settings on this test's database with INTERNAL_API_TOKEN set."""
    monkeypatch.setenv("INTERNAL_API_TOKEN", TOKEN)
    settings.get_settings.cache_clear()
    return settings.get_settings()


@pytest.fixture
def client(token_env: settings.Settings, app: AgntApp) -> Iterator[TestClient]:
    """The admin app as ``agnt-jobs admin`` serves it: the real App and registry."""
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture
def client_for(
    token_env: settings.Settings, engine: Engine
) -> Iterator[Callable[[AgntApp], TestClient]]:
    """A client on the admin app for a given App (a test's own registry)."""
    clients: list[TestClient] = []

    def make(agnt_app: AgntApp) -> TestClient:
        context = AdminContext(app=agnt_app, engine=engine, settings=token_env)
        test_client = TestClient(create_app(context))
        clients.append(test_client)
        return test_client

    yield make
    for test_client in clients:
        test_client.close()
