"""``make run``'s command, ``agnt-jobs worker --admin``, as a new user meets it: no
settings at all, an embedded database in a fresh data directory. It serves the admin
page, prints where and the token it made (kept in the data directory, mode 0600),
accepts a sign-in with it, logs no error while the jobs whose outside systems have
no settings wait, and Ctrl-C leaves nothing running."""

from __future__ import annotations

import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from agnt_jobs.db.migrate import PROJECT_ROOT
from tests.support.new_user import environment, free_port, postgres_running

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _start(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = environment(
        AGNT_DATA_DIR=str(data_dir),
        AGNT_ADMIN_PORT=str(port),
        AGNT_LOG_FORMAT="text",
    )
    return subprocess.Popen(
        [BIN / "agnt-jobs", "worker", "--admin"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )


def _wait_for_page(url: str, process: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < 120:
        assert process.poll() is None, "the worker exited"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the admin page never answered")


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)  # Ctrl-C
    return process.wait(timeout=60)


def test_make_run_serves_the_page_with_a_token_made_for_the_data_directory(
    tmp_path: Path,
    embedded_dir: Path,
) -> None:
    data_dir, port, log = embedded_dir / "agnt", free_port(), tmp_path / "run.log"
    page = f"http://127.0.0.1:{port}/admin/scheduler/ui"
    process = _start(data_dir, port, log)
    try:
        _wait_for_page(page, process)
        printed = log.read_text()
        assert f"admin page: {page}" in printed
        [token] = re.findall(
            r"admin token, made for this data directory: (\S+)", printed
        )
        token_file = data_dir / "admin-token"
        assert token_file.read_text().strip() == token
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as browser:
            # The page serves before the worker beside it has written the
            # schedules table (until then they are "not deployed"): wait for it.
            deadline = time.monotonic() + 60
            while not any(
                entry["deployed"]
                for entry in browser.get(
                    "/admin/scheduler", headers={"X-Internal-Token": token}
                ).json()["schedules"]
            ):
                assert time.monotonic() < deadline, "the worker never synced"
                time.sleep(0.2)
            wrong = browser.post("/admin/scheduler/ui/login", data={"token": "nope"})
            assert wrong.status_code == 403
            signed_in = browser.post(
                "/admin/scheduler/ui/login",
                data={"token": token},
                follow_redirects=True,
            )
            assert signed_in.status_code == 200
            assert "deliver_reminders" in signed_in.text
            assert "not configured" in signed_in.text
            registry = browser.get(
                "/admin/scheduler", headers={"X-Internal-Token": token}
            ).json()
        waiting = {
            entry["id"]: entry["missing_settings"]
            for entry in registry["schedules"]
            if entry["health"] == "not_configured"
        }
        assert waiting["deliver_reminders"] == ["AGNT_CHANNEL_GATEWAY_URL"]
        assert waiting["monthly_invoice"] == ["AGNT_STRIPE_API_KEY"]
        time.sleep(20)  # ticks come and go: none of them fails
        assert process.poll() is None
    finally:
        code = _stop(process)
    output = log.read_text()
    assert code == 0, output
    assert "Traceback" not in output and " ERROR " not in output, output
    assert "jobs not configured, their ticks are skipped" in output
    assert output.count("jobs not configured") == 1
    assert not postgres_running(data_dir)

    # Started again on the same data directory: the same token, not printed again.
    process = _start(data_dir, port, log)
    try:
        _wait_for_page(page, process)
        again = log.read_text()
        assert "admin token, made" not in again
        assert f"sign in with the token in {data_dir / 'admin-token'}" in again
        assert (
            httpx.get(
                f"http://127.0.0.1:{port}/admin/scheduler",
                headers={"X-Internal-Token": token},
            ).status_code
            == 200
        )
    finally:
        assert _stop(process) == 0
    assert not postgres_running(data_dir)


def test_ctrl_c_as_the_page_first_answers_stops_cleanly(
    tmp_path: Path, embedded_dir: Path
) -> None:
    """The page answers before the worker beside it has taken the stop signals;
    Ctrl-C then ends the start: exit 0, the embedded server stopped, no
    traceback (it was a KeyboardInterrupt, exit 130)."""
    data_dir, port, log = embedded_dir / "agnt", free_port(), tmp_path / "run.log"
    page = f"http://127.0.0.1:{port}/admin/scheduler/ui"
    process = _start(data_dir, port, log)
    try:
        started = time.monotonic()
        while time.monotonic() - started < 120:
            assert process.poll() is None, "the worker exited"
            try:
                if httpx.get(page, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.02)
    finally:
        code = _stop(process)
    output = log.read_text()
    assert code == 0, output
    assert "Traceback" not in output, output
    assert not postgres_running(data_dir)
