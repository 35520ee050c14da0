"""Who gets in: the token in X-Internal-Token for the JSON API, the signed session
cookie for the page, and nobody at all when no token is configured."""

from __future__ import annotations

import hmac
import logging
import time

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from agnt_jobs import settings
from agnt_jobs.admin import auth, create_app
from tests.support.admin_data import HEADERS, TOKEN

ENDPOINTS = [
    ("GET", "/admin/scheduler"),
    ("GET", "/admin/scheduler/runs"),
    ("GET", "/admin/scheduler/runs/1"),
    ("POST", "/admin/scheduler/selfcheck/run"),
    ("POST", "/admin/scheduler/clean_finished_jobs/pause"),
    ("POST", "/admin/scheduler/clean_finished_jobs/resume"),
    # The schema maps the door: it is behind it too.
    ("GET", "/admin/scheduler/openapi.json"),
]


def _waiting_jobs(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT count(*) FROM procrastinate_jobs")
        ).scalar_one()


@pytest.mark.parametrize(
    ("configured", "why"),
    [
        (None, "INTERNAL_API_TOKEN is not set"),
        ("", "INTERNAL_API_TOKEN is not set"),
        # Too weak to guard anything: closed even where the router is mounted in a
        # backend (agnt-jobs admin does not start with it).
        ("a", "INTERNAL_API_TOKEN has 1 characters: use at least 32"),
    ],
)
def test_no_token_configured_refuses_everything_with_503(
    env: settings.Settings,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    configured: str | None,
    why: str,
) -> None:
    if configured is not None:
        monkeypatch.setenv("INTERNAL_API_TOKEN", configured)
        settings.get_settings.cache_clear()
    with TestClient(create_app()) as client:
        for method, path in [*ENDPOINTS, ("GET", "/metrics")]:
            for headers in (
                {},
                {"X-Internal-Token": ""},
                HEADERS,
                {"X-Internal-Token": "a"},
                {"Authorization": "Bearer a"},
            ):
                response = client.request(method, path, headers=headers)
                assert response.status_code == 503, (method, path, headers)
                assert why in response.json()["detail"]
        page = client.get("/admin/scheduler/ui")
        assert page.status_code == 503
        assert why in page.text
        for token in ("", "a"):
            login = client.post("/admin/scheduler/ui/login", data={"token": token})
            assert login.status_code == 503
            assert auth.SESSION_COOKIE not in login.cookies
    assert _waiting_jobs(engine) == 0


def test_missing_token_is_401_and_a_wrong_one_403(
    client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More wrong tokens than the throttle allows a client: it is tested below.
    monkeypatch.setenv("AGNT_ADMIN_FAILURES_PER_MINUTE", "1000")
    settings.get_settings.cache_clear()
    for method, path in ENDPOINTS:
        missing = client.request(method, path)
        assert missing.status_code == 401, (method, path)
        assert missing.json() == {
            "detail": "missing X-Internal-Token or Authorization: Bearer header"
        }
        assert (
            client.request(method, path, headers={"X-Internal-Token": ""}).status_code
            == 401
        )
        for wrong in (TOKEN[:-1], TOKEN + "x", TOKEN.upper(), "é" + TOKEN[1:]):
            # Sent as raw bytes: a header is not always ASCII.
            response = client.request(
                method, path, headers={"X-Internal-Token": wrong.encode()}
            )
            assert response.status_code == 403, (method, path, wrong)
            assert response.json() == {"detail": "wrong X-Internal-Token"}
    # Nothing was deferred or paused by the refused requests.
    assert _waiting_jobs(engine) == 0
    with engine.connect() as connection:
        assert (
            connection.execute(
                sa.text("SELECT count(*) FROM schedules WHERE NOT enabled")
            ).scalar_one()
            == 0
        )
    assert client.get("/admin/scheduler", headers=HEADERS).status_code == 200


def test_the_token_is_never_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.get("/admin/scheduler", headers={"X-Internal-Token": TOKEN + "-wrong"})
    client.post("/admin/scheduler/clean_finished_jobs/pause", headers=HEADERS)
    client.post("/admin/scheduler/ui/login", data={"token": TOKEN + "-wrong"})
    client.post("/admin/scheduler/ui/login", data={"token": TOKEN})
    logged = [f"{record.getMessage()} {record.__dict__}" for record in caplog.records]
    assert any("admin_auth_refused" in line for line in logged)
    assert any("admin_pause" in line for line in logged)
    assert not [line for line in logged if TOKEN in line]


def _sign_in(client: TestClient, token: str = TOKEN):
    return client.post(
        "/admin/scheduler/ui/login", data={"token": token}, follow_redirects=False
    )


def test_sign_in_sets_a_strict_httponly_cookie_that_is_not_the_token(
    client: TestClient,
) -> None:
    page = client.get("/admin/scheduler/ui")
    assert page.status_code == 200
    assert 'name="token"' in page.text and "data-schedule" not in page.text

    wrong = _sign_in(client, "nope")
    assert wrong.status_code == 403 and "Wrong token." in wrong.text
    assert "set-cookie" not in wrong.headers
    empty = _sign_in(client, "")
    assert empty.status_code == 401 and "set-cookie" not in empty.headers

    response = _sign_in(client)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/scheduler/ui"
    cookie = response.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "path=/admin/scheduler/ui" in cookie.lower()
    value = client.cookies[auth.SESSION_COOKIE]
    assert TOKEN not in value and TOKEN not in cookie

    signed_in = client.get("/admin/scheduler/ui")
    assert signed_in.status_code == 200
    assert 'data-schedule="selfcheck"' not in signed_in.text  # a job, not a schedule
    assert 'data-schedule="clean_finished_jobs"' in signed_in.text
    assert signed_in.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in signed_in.headers["content-security-policy"]

    # The cookie opens the page only: the JSON API still wants the header.
    assert client.get("/admin/scheduler").status_code == 401

    csrf = signed_in.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    out = client.post(
        "/admin/scheduler/ui/logout", data={"csrf": csrf}, follow_redirects=False
    )
    assert out.status_code == 303
    assert auth.SESSION_COOKIE not in client.cookies
    assert 'name="token"' in client.get("/admin/scheduler/ui").text


def test_forged_expired_or_rotated_sessions_are_signed_out(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = TOKEN.encode()
    max_age = settings.get_settings().admin_session_hours * 3600
    good = auth.new_session(token)
    assert auth.session_valid(good, token, max_age)
    issued, nonce, signature = good.split(".")
    forged = [
        f"{int(issued) + 3600}.{nonce}.{signature}",  # a longer life, same signature
        f"{issued}.{nonce}.{'0' * len(signature)}",
        auth.new_session(b"another token"),
        auth.new_session(token, now=time.time() - max_age - 60),  # expired
        TOKEN,  # the raw token is not a session
        "garbage",
    ]
    for value in forged:
        assert not auth.session_valid(value, token, max_age), value
        client.cookies.set(auth.SESSION_COOKIE, value, path="/admin/scheduler/ui")
        page = client.get("/admin/scheduler/ui")
        assert 'name="token"' in page.text and "data-schedule" not in page.text
        client.cookies.clear()

    _sign_in(client)
    assert "data-schedule" in client.get("/admin/scheduler/ui").text
    # A new token ends every session at once.
    monkeypatch.setenv("INTERNAL_API_TOKEN", TOKEN + "-rotated")
    settings.get_settings.cache_clear()
    assert 'name="token"' in client.get("/admin/scheduler/ui").text


def test_page_actions_need_the_session_and_its_csrf_value(
    client: TestClient, engine: Engine
) -> None:
    def enabled() -> bool:
        with engine.connect() as connection:
            return (
                connection.execute(
                    sa.text("SELECT enabled FROM schedules WHERE id = 'dlq_cleanup'")
                ).scalar_one_or_none()
                is not False
            )

    path = "/admin/scheduler/ui/dlq_cleanup/pause"
    signed_out = client.post(path, data={"csrf": "x"}, follow_redirects=False)
    assert signed_out.status_code == 401 and enabled()

    _sign_in(client)
    session = client.cookies[auth.SESSION_COOKIE]
    csrf = auth.csrf_value(session, TOKEN.encode())
    # One character off (whatever the last one is: a fixed "0" would be the real
    # value one time in sixteen).
    tampered = csrf[:-1] + ("1" if csrf.endswith("0") else "0")
    for bad in ({}, {"csrf": ""}, {"csrf": tampered}, {"csrf": "x" * 64}):
        response = client.post(path, data=bad, follow_redirects=False)
        assert response.status_code == 403, bad
        assert enabled()
    # A CSRF value of another session is refused too.
    other = auth.csrf_value(auth.new_session(TOKEN.encode()), TOKEN.encode())
    assert client.post(path, data={"csrf": other}).status_code == 403 and enabled()

    done = client.post(path, data={"csrf": csrf}, follow_redirects=False)
    assert done.status_code == 303 and not enabled()
    assert done.headers["location"].startswith("/admin/scheduler/ui?notice=")
    assert "dlq_cleanup paused" in client.get(done.headers["location"]).text
    assert f'value="{csrf}"' in client.get("/admin/scheduler/ui").text


def test_every_secret_is_compared_in_constant_time(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header token, the sign-in form's token, the session cookie's signature
    and the CSRF value all go through hmac.compare_digest (``==`` stops at the
    first differing byte, so its timing tells how much of a guess was right), and
    the right values still get in."""
    calls: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def recording(given: bytes, expected: bytes) -> bool:
        calls.append((given, expected))
        return constant_time(given, expected)

    monkeypatch.setattr(auth.hmac, "compare_digest", recording)
    token, guess = TOKEN.encode(), (TOKEN[:-1] + "x").encode()

    # The header.
    assert client.get("/admin/scheduler", headers=HEADERS).status_code == 200
    assert (token, token) in calls
    calls.clear()
    wrong = client.get("/admin/scheduler", headers={"X-Internal-Token": guess})
    assert wrong.status_code == 403 and (guess, token) in calls

    # The sign-in form.
    calls.clear()
    assert _sign_in(client, guess.decode()).status_code == 403
    assert (guess, token) in calls
    calls.clear()
    assert _sign_in(client).status_code == 303
    assert (token, token) in calls

    # The session cookie: its signature against the one made for its payload.
    session = client.cookies[auth.SESSION_COOKIE]
    payload, signature = session.rsplit(".", 1)
    calls.clear()
    assert "data-schedule" in client.get("/admin/scheduler/ui").text
    assert (signature.encode(), signature.encode()) in calls
    forged = "0" * len(signature)
    client.cookies.set(
        auth.SESSION_COOKIE, f"{payload}.{forged}", path="/admin/scheduler/ui"
    )
    calls.clear()
    assert 'name="token"' in client.get("/admin/scheduler/ui").text
    assert (forged.encode(), signature.encode()) in calls
    client.cookies.set(auth.SESSION_COOKIE, session, path="/admin/scheduler/ui")

    # The CSRF value of a page action.
    csrf = auth.csrf_value(session, token).encode()
    path = "/admin/scheduler/ui/dlq_cleanup/pause"
    calls.clear()
    refused = client.post(path, data={"csrf": "f" * len(csrf)}, follow_redirects=False)
    assert refused.status_code == 403 and (b"f" * len(csrf), csrf) in calls
    calls.clear()
    done = client.post(path, data={"csrf": csrf.decode()}, follow_redirects=False)
    assert done.status_code == 303 and (csrf, csrf) in calls


@pytest.mark.parametrize(
    "path",
    [
        "/admin/scheduler/runs?job=a%00b",
        "/admin/scheduler/runs?status=failed&cursor=%00",
        "/admin/scheduler/a%00b/run",
        "/admin/scheduler/ui?notice=%00",
        "/admin/scheduler/runs?job=a%1Fb",
        "/admin/scheduler/runs?job=a%0Ab",
        "/admin/scheduler/runs?job=a%7F",
    ],
)
def test_a_control_character_in_the_path_or_query_is_a_422(
    client: TestClient, path: str
) -> None:
    method = client.post if path.endswith("/run") else client.get
    response = method(path, headers=HEADERS)
    assert response.status_code == 422, response.text


def test_the_access_log_has_paths_without_their_query_strings(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """uvicorn writes its access line with the request's path and query; a token
    someone put in a URL must not reach the log. (TestClient writes no access
    line: the record uvicorn would log goes through our filter directly.)"""
    access = logging.getLogger("uvicorn.access")
    record = access.makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/admin/scheduler/runs?token={TOKEN}", "1.1", 401),
        None,
    )
    assert all(f.filter(record) for f in access.filters)
    assert TOKEN not in record.getMessage()
    assert '"GET /admin/scheduler/runs HTTP/1.1" 401' in record.getMessage()


def test_signing_out_ends_the_session_on_the_server(
    client: TestClient, engine: Engine
) -> None:
    """The old cookie, kept by whoever copied it, is refused after sign-out: for
    the page and for every action."""
    _sign_in(client)
    old = client.cookies[auth.SESSION_COOKIE]
    page = client.get("/admin/scheduler/ui")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    # Another site's form cannot sign anyone out: the CSRF value is needed.
    for wrong in ("", "0" * 64):
        refused = client.post("/admin/scheduler/ui/logout", data={"csrf": wrong})
        assert refused.status_code == 403
        assert "data-schedule" in client.get("/admin/scheduler/ui").text
    out = client.post("/admin/scheduler/ui/logout", data={"csrf": csrf})
    assert out.status_code == 200 and 'name="token"' in out.text

    client.cookies.set(auth.SESSION_COOKIE, old, path="/admin/scheduler/ui")
    assert 'name="token"' in client.get("/admin/scheduler/ui").text
    for action in ("pause", "run"):
        response = client.post(
            f"/admin/scheduler/ui/dlq_cleanup/{action}",
            data={"csrf": csrf},
            follow_redirects=False,
        )
        assert response.status_code == 401, action
    assert _waiting_jobs(engine) == 0
    with engine.connect() as connection:
        assert connection.execute(
            sa.text("SELECT enabled FROM schedules WHERE id = 'dlq_cleanup'")
        ).scalar_one_or_none() in (None, True)
        assert (
            connection.execute(sa.text("SELECT count(*) FROM admin_sessions"))
        ).scalar_one() == 0

    # Another sign-in is a session of its own, unaffected by the first's end.
    client.cookies.clear()
    _sign_in(client)
    second = client.cookies[auth.SESSION_COOKIE]
    client.cookies.clear()
    _sign_in(client)
    third = client.get("/admin/scheduler/ui").text
    client.post(
        "/admin/scheduler/ui/logout",
        data={"csrf": third.split('name="csrf" value="', 1)[1].split('"', 1)[0]},
    )
    client.cookies.set(auth.SESSION_COOKIE, second, path="/admin/scheduler/ui")
    assert "data-schedule" in client.get("/admin/scheduler/ui").text


def test_wrong_sign_ins_are_throttled_and_logged_once_a_window(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    limit = settings.get_settings().admin_failures_per_minute
    for _ in range(limit):
        assert _sign_in(client, TOKEN + "-wrong").status_code == 403
    refused = _sign_in(client, TOKEN + "-wrong")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # The right token too, from this address, until the minute is over.
    right = _sign_in(client)
    assert right.status_code == 429 and auth.SESSION_COOKIE not in right.cookies
    assert client.get("/admin/scheduler", headers=HEADERS).status_code == 429
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.__dict__.get("action") for r in warnings] == [
        "admin_auth_refused",
        "admin_auth_throttled",
    ]


def test_wrong_header_tokens_are_throttled(client: TestClient) -> None:
    limit = settings.get_settings().admin_failures_per_minute
    wrong = {"X-Internal-Token": TOKEN + "-wrong"}
    for _ in range(limit):
        assert client.get("/admin/scheduler", headers=wrong).status_code == 403
    refused = client.get("/admin/scheduler", headers=wrong)
    assert refused.status_code == 429 and refused.headers["retry-after"]
    assert client.get("/metrics", headers=HEADERS).status_code == 429
    assert _sign_in(client).status_code == 429


def test_the_throttle_counts_per_address_and_per_minute() -> None:
    throttle = auth.Throttle(limit=3)
    for _ in range(3):
        throttle.failed("10.0.0.1", "/x", now=100.0)
    assert throttle.retry_after("10.0.0.1", now=100.0) == 60
    assert throttle.retry_after("10.0.0.1", now=130.5) == 30
    assert throttle.retry_after("10.0.0.2", now=130.5) is None
    assert throttle.retry_after("10.0.0.1", now=160.0) is None
    throttle.failed("10.0.0.1", "/x", now=161.0)
    assert throttle.retry_after("10.0.0.1", now=161.0) is None
