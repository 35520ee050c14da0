"""Every ``agnt-jobs`` command an operator runs, with logging at DEBUG through our
JSON formatter: each line it logs is JSON, none is a traceback or a logging error,
and a job whose result has a field named like a ``LogRecord`` attribute
(``monthly_invoice``'s ``created``) ends ``succeeded``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support.admin_data import HEADERS, TOKEN
from tests.support.billing_data import GOOD_CARD, StripeWorld, subscription_row, venue

BIN = Path(sys.executable).parent
DEBUG_JSON = {"AGNT_LOG_LEVEL": "DEBUG", "AGNT_LOG_FORMAT": "json"}

pytestmark = pytest.mark.slow


def _env(db_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "AGNT_DATABASE_URL": db_url, **DEBUG_JSON, **extra}


def _json_lines(stderr: str) -> list[dict[str, Any]]:
    """The log lines, each of which must be one JSON object: a traceback printed
    by a crash, or by ``logging`` failing to write a record, is not."""
    lines = []
    for line in stderr.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    return lines


def _wait_until(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Process:
    """A long-running ``agnt-jobs`` command whose stderr goes to a file (a pipe
    nobody reads would fill up at DEBUG and stall it)."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._file = log.open("w")
        self.popen = subprocess.Popen(
            [BIN / "agnt-jobs", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._file,
            text=True,
        )

    def logged(self, action: str | None = None) -> list[dict[str, Any]]:
        """Its log lines (all of which must be JSON), or those of one action."""
        lines = _json_lines(self.log.read_text())
        return [line for line in lines if action in (None, line.get("action"))]

    def has_logged(self, action: str) -> bool:
        assert self.popen.poll() is None, self.log.read_text()
        return f'"action": "{action}"' in self.log.read_text()

    def stop(self) -> int:
        self.popen.send_signal(signal.SIGTERM)
        code = self.popen.wait(timeout=60)
        self._file.close()
        return code


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait()


@pytest.mark.parametrize(
    ("options", "fields"),
    [
        ([], {}),
        (["--name", "w1"], {"name": "w1"}),
        (["--concurrency", "2"], {"concurrency": 2}),
        (["--queue", "default", "-q", "heavy"], {"queues": ["default", "heavy"]}),
    ],
    ids=["defaults", "name", "concurrency", "queues"],
)
def test_worker_starts_and_stops_with_each_option(
    db_url: str,
    tmp_path: Path,
    processes: list[Process],
    options: list[str],
    fields: dict[str, Any],
) -> None:
    worker = Process(["worker", *options], _env(db_url), tmp_path / "worker.log")
    processes.append(worker)
    _wait_until(lambda: worker.has_logged("start_worker"), "the worker to start")
    # Procrastinate installs its signal handlers just after that line.
    time.sleep(0.5)
    assert worker.stop() == 0, worker.log.read_text()
    [start] = worker.logged("agnt_worker_start")
    assert fields.items() <= start["fields"].items()


def test_schedules_and_run_commands_log_json_only(db_url: str) -> None:
    env = _env(db_url)
    for args, code in [
        (("schedules", "list"), 0),
        (("schedules", "list", "--json"), 0),
        # No worker has synced the declarations into this database yet.
        (("schedules", "check"), 1),
        (("schedules", "pause", "booking_reminders"), 0),
        (("schedules", "resume", "booking_reminders"), 0),
        (("run", "booking_reminders"), 0),
    ]:
        result = subprocess.run(
            [BIN / "agnt-jobs", *args], env=env, capture_output=True, text=True
        )
        assert result.returncode == code, (args, result.stdout, result.stderr)
        _json_lines(result.stderr)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_admin_serves_and_stops_logging_json_only(
    db_url: str, tmp_path: Path, processes: list[Process]
) -> None:
    port = _free_port()
    admin = Process(
        ["admin", "--port", str(port)],
        _env(db_url, INTERNAL_API_TOKEN=TOKEN),
        tmp_path / "admin.log",
    )
    processes.append(admin)
    url = f"http://127.0.0.1:{port}/admin/scheduler"

    def answers() -> bool:
        assert admin.popen.poll() is None, admin.log.read_text()
        try:
            return httpx.get(url, headers=HEADERS, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    _wait_until(answers, "the admin view to answer")
    assert httpx.get(url).status_code == 401
    wrong = {name: "not-the-token" for name in HEADERS}
    assert httpx.get(url, headers=wrong).status_code == 403
    assert admin.stop() == 0, admin.log.read_text()
    actions = {line.get("action") for line in admin.logged()}
    assert {"admin_start", "admin_auth_refused"} <= actions


def test_monthly_invoice_through_a_worker_succeeds_with_its_counts(
    db_url: str,
    engine: Engine,
    stripe_settings: Any,
    localstripe: Any,
    tmp_path: Path,
    processes: list[Process],
) -> None:
    world = StripeWorld(localstripe.url)
    customer = world.customer(GOOD_CARD)
    subscription = world.subscription(customer)
    with engine.begin() as connection:
        # Subscribed since long before last month: due this month.
        venue_id = venue(connection)
        subscription_row(
            connection,
            venue_id,
            customer,
            subscription["id"],
            "active",
            created_at=datetime.now(UTC) - timedelta(days=400),
        )
    env = _env(db_url)  # stripe_settings put localstripe's URL and key in os.environ
    worker = Process(["worker"], env, tmp_path / "worker.log")
    processes.append(worker)
    result = subprocess.run(
        [BIN / "agnt-jobs", "run", "monthly_invoice", "--wait", "--timeout", "120"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    with engine.connect() as connection:
        status, counts = connection.execute(
            sa.text(
                "SELECT status, result FROM job_runs "
                "WHERE task_name = 'monthly_invoice' ORDER BY started_at DESC LIMIT 1"
            )
        ).one()
        invoices = connection.execute(
            sa.text("SELECT count(*) FROM monthly_invoices WHERE venue_id = :v"),
            {"v": venue_id},
        ).scalar_one()
    assert status == "succeeded"
    assert counts["created"] == 1
    assert invoices == 1
    assert worker.stop() == 0
    [done] = worker.logged("monthly_invoice")
    assert done["fields"]["created"] == 1
    assert done["job"]["task"] == "monthly_invoice"
