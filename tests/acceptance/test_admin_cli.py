"""``agnt-jobs admin`` as an operator starts it: a real process serving the admin view
on a port, refusing everything without a token, stopping cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support.admin_data import HEADERS, TOKEN

BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(
    db_url: str,
    token: str | None,
    command: tuple[str, ...] = ("admin",),
    **settings: str,
) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "AGNT_DATABASE_URL": db_url, "AGNT_LOG_FORMAT": "json"}
    env.pop("INTERNAL_API_TOKEN", None)
    if token is not None:
        env["INTERNAL_API_TOKEN"] = token
    port = _free_port()
    env.update(settings, AGNT_ADMIN_PORT=str(port))
    process = subprocess.Popen(
        [BIN / "agnt-jobs", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, process.communicate()
        try:
            httpx.get(url + "/admin/scheduler", timeout=1)
            return process, url
        except httpx.TransportError:
            assert time.monotonic() < deadline, "agnt-jobs admin did not start"
            time.sleep(0.1)


def _wait_for_the_worker(db_url: str) -> None:
    """Until the worker beside the page runs (its deferrer has recorded it, after
    the worker took over SIGTERM): the page answers before the worker starts."""
    deadline = time.monotonic() + 30
    with psycopg.connect(db_url, autocommit=True) as connection:
        while not connection.execute("SELECT 1 FROM schedule_workers").fetchone():
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.1)


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    return stderr


def test_serves_the_registry_with_the_token(db_url: str) -> None:
    process, url = _serve(db_url, TOKEN)
    try:
        assert httpx.get(url + "/admin/scheduler").status_code == 401
        response = httpx.get(url + "/admin/scheduler", headers=HEADERS)
        assert response.status_code == 200
        assert any(s["id"] == "monthly_invoice" for s in response.json()["schedules"])
        page = httpx.get(url + "/", follow_redirects=True)
        assert page.status_code == 200 and 'name="token"' in page.text
        assert httpx.get(url + "/admin/scheduler/openapi.json").status_code == 401
        schema = httpx.get(url + "/admin/scheduler/openapi.json", headers=HEADERS)
        schema = schema.json()
        assert "/admin/scheduler/runs/{job_id}" in schema["paths"]
    finally:
        stderr = _stop(process)
    assert '"action": "admin_start"' in stderr
    assert TOKEN not in stderr


def test_without_a_token_it_starts_and_refuses_everything(db_url: str) -> None:
    process, url = _serve(db_url, None)
    try:
        response = httpx.get(url + "/admin/scheduler", headers=HEADERS)
        assert response.status_code == 503
        assert "INTERNAL_API_TOKEN is not set" in response.json()["detail"]
    finally:
        stderr = _stop(process)
    assert '"action": "admin_token_missing"' in stderr


def test_a_database_behind_the_code_is_a_one_line_error(db_url: str) -> None:
    subprocess.run(
        [BIN / "agnt-jobs", "db", "downgrade", "0003"],
        env={**os.environ, "AGNT_DATABASE_URL": db_url},
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [BIN / "agnt-jobs", "admin", "--port", str(_free_port())],
        env={**os.environ, "AGNT_DATABASE_URL": db_url, "INTERNAL_API_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("agnt-jobs: the database is at revision 0003")


@pytest.mark.parametrize("command", [("admin",), ("worker", "--admin")])
@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_forwarded_addresses_are_believed_only_from_a_named_proxy(
    db_url: str, command: tuple[str, ...], trusted: str
) -> None:
    """From 127.0.0.1, past the limit of wrong tokens: with no proxy named, a
    forwarded address is no way out of the throttle; with 127.0.0.1 named, each
    forwarded address is a client of its own."""
    process, url = _serve(
        db_url,
        TOKEN,
        command,
        AGNT_ADMIN_FAILURES_PER_MINUTE="2",
        AGNT_ADMIN_TRUSTED_PROXIES=trusted,
    )
    try:
        with httpx.Client(base_url=url) as http:
            for _ in range(2):
                wrong = {"X-Internal-Token": "x", "X-Forwarded-For": "10.0.0.1"}
                assert http.get("/admin/scheduler", headers=wrong).status_code == 403
            other = {**HEADERS, "X-Forwarded-For": "10.0.0.2"}
            answer = http.get("/admin/scheduler", headers=other)
            assert answer.status_code == (200 if trusted else 429)
        if command[0] == "worker":
            _wait_for_the_worker(db_url)
    finally:
        stderr = _stop(process)
    refused = [line for line in stderr.splitlines() if "admin_auth_refused" in line]
    assert len(refused) == 1
    assert ('"10.0.0.1"' if trusted else '"127.0.0.1"') in refused[0]
