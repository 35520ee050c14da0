"""The admin view's client address as a real server decides it, from 127.0.0.1:
X-Forwarded-For is believed only from a proxy named in AGNT_ADMIN_TRUSTED_PROXIES,
so with none named a client on the same host cannot pick its address to slip the
throttle or write text into the audit; and the audit names the credential that
was checked, never the client's text."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import Engine

from agnt_jobs import settings
from agnt_jobs.admin import AdminContext, create_app
from agnt_jobs.admin.app import server_options
from agnt_jobs.scheduler import deploy
from agnt_jobs.scheduler.worker import AgntApp
from tests.support.admin_data import HEADERS, TIDY, TOKEN, make_app
from tests.support.new_user import free_port

LIMIT = 3
FORGED = "<img src=x onerror=alert(9)>"


class _ThreadServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # signals belong to the main thread


@contextlib.contextmanager
def _serving(agnt_app: AgntApp, engine: Engine) -> Iterator[str]:
    """The admin app served by uvicorn with the options ``agnt-jobs admin`` uses,
    on 127.0.0.1 and a free port; its base URL."""
    current = settings.get_settings()
    app = create_app(AdminContext(app=agnt_app, engine=engine, settings=current))
    port = free_port()
    server = _ThreadServer(
        uvicorn.Config(app, host="127.0.0.1", port=port, **server_options(current))
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()))
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "the server did not start"
            threading.Event().wait(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
async def serve(
    db_url: str,
    token_env: settings.Settings,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[str], contextlib.AbstractContextManager[str]]:
    agnt_app = make_app(db_url, [TIDY])
    async with agnt_app.open_async():
        await deploy.sync_table(agnt_app)

    def start(trusted: str) -> contextlib.AbstractContextManager[str]:
        monkeypatch.setenv("AGNT_ADMIN_FAILURES_PER_MINUTE", str(LIMIT))
        monkeypatch.setenv("AGNT_ADMIN_TRUSTED_PROXIES", trusted)
        settings.get_settings.cache_clear()
        return _serving(agnt_app, engine)

    return start


def _changed_by(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.text(
                    "SELECT changed_by FROM schedule_changes "
                    "WHERE source = 'admin' ORDER BY id"
                )
            ).scalars()
        )


def _xff(address: str, token: str = TOKEN) -> dict[str, str]:
    return {"X-Internal-Token": token, "X-Forwarded-For": address}


def test_no_proxy_named_the_connection_is_the_client(
    serve: Callable[[str], contextlib.AbstractContextManager[str]],
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    # Another test's server may have set uvicorn's access logger to WARNING.
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    with serve("") as url, httpx.Client(base_url=url) as http:
        changed = http.patch(
            "/admin/scheduler/tidy", json={"cron": "7 3 * * *"}, headers=_xff(FORGED)
        )
        assert changed.status_code == 200, changed.text
        assert _changed_by(engine) == ["admin token from 127.0.0.1"]

        for _ in range(LIMIT):
            assert http.get("/admin/scheduler", headers=_xff("1.1.1.1", "x")).is_error
        # 127.0.0.1 is throttled: another forwarded address is no way out, with a
        # wrong token or the right one.
        for n in range(LIMIT * 3):
            wrong = http.get("/admin/scheduler", headers=_xff(f"10.0.0.{n}", "x"))
            assert wrong.status_code == 429
        assert http.get("/admin/scheduler", headers=_xff("10.9.9.9")).status_code == 429
        signed_in = http.post(
            "/admin/scheduler/ui/login",
            data={"token": TOKEN},
            headers={"X-Forwarded-For": "10.9.9.8"},
        )
        assert signed_in.status_code == 429
    refused = [
        r for r in caplog.records if getattr(r, "action", "") == "admin_auth_refused"
    ]
    assert [r.fields["client"] for r in refused] == ["127.0.0.1"]  # type: ignore[attr-defined]
    access = [r for r in caplog.records if r.name == "uvicorn.access"]
    assert access and all(str(r.args[0]).startswith("127.0.0.1:") for r in access)  # type: ignore[index]


def test_a_named_proxy_is_believed_and_only_for_an_address(
    serve: Callable[[str], contextlib.AbstractContextManager[str]],
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    with serve("127.0.0.1") as url, httpx.Client(base_url=url) as http:
        for minute, address in enumerate(("203.0.113.7", FORGED)):
            changed = http.patch(
                "/admin/scheduler/tidy",
                json={"cron": f"{minute} 3 * * *", "by": "ana"},
                headers=_xff(address),
            )
            assert changed.status_code == 200, changed.text
        assert _changed_by(engine) == [
            "ana via admin token from 203.0.113.7",
            "ana via admin token from unknown",
        ]
        # The throttle counts the forwarded address: one client is refused, the
        # proxy's other clients are not.
        for _ in range(LIMIT):
            wrong = http.get("/admin/scheduler", headers=_xff("198.51.100.1", "x"))
            assert wrong.status_code == 403
        throttled = http.get("/admin/scheduler", headers=_xff("198.51.100.1"))
        assert throttled.status_code == 429
        assert http.get("/admin/scheduler", headers=_xff("198.51.100.2")).is_success
    access = [r for r in caplog.records if r.name == "uvicorn.access"]
    assert any(str(r.args[0]).startswith("203.0.113.7:") for r in access)  # type: ignore[index]


def test_the_caller_names_itself_only_with_a_name(
    serve: Callable[[str], contextlib.AbstractContextManager[str]],
    engine: Engine,
) -> None:
    with serve("") as url, httpx.Client(base_url=url, headers=HEADERS) as http:
        for by in (FORGED, "ana (admin)", "x" * 65, " ana"):
            refused = http.patch(
                "/admin/scheduler/tidy", json={"cron": "7 3 * * *", "by": by}
            )
            assert refused.status_code == 422, by
            assert refused.json()["detail"][0]["loc"] == ["body", "by"]
        assert _changed_by(engine) == []
