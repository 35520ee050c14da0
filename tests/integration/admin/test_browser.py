"""The admin page end to end in headless Chromium: the admin app served by uvicorn on
a real socket, a person signs in with the token, sees every declared schedule, runs
and pauses one with the page's buttons, and signs out.

It needs Debian's ``chromium`` (``.ci/run`` installs it); playwright drives that
binary and downloads no browser of its own.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import Engine

from agnt_jobs import settings as agnt_settings
from agnt_jobs.admin import create_app
from agnt_jobs.scheduler import registry
from agnt_jobs.scheduler.worker import AgntApp
from periodic import DECLARED
from tests.support.admin_data import TOKEN

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium "
    "(apt-get install -y chromium; .ci/run installs it)",
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def synced(app: AgntApp) -> None:
    async with app.open_async():
        await registry.sync_table(app)  # as a worker of this code does at start


@pytest.fixture
def admin_url(token_env: agnt_settings.Settings, synced: None) -> Iterator[str]:
    """The admin app on a free local port, as ``agnt-jobs admin`` serves it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, (
            "uvicorn did not start"
        )
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/admin/scheduler/ui"
    server.should_exit = True
    thread.join(timeout=10)


def test_sign_in_and_see_every_schedule(admin_url: str, engine: Engine) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.goto(admin_url)
            expect(page.locator("#token")).to_be_visible()
            assert page.locator("[data-schedule]").count() == 0

            page.fill("#token", "not the token")
            page.click("button[type=submit]")
            expect(page.get_by_role("alert")).to_have_text("Wrong token.")

            page.fill("#token", TOKEN)
            page.click("button[type=submit]")
            expect(page.locator("#registry")).to_be_visible()
            rows = page.locator("#registry tbody tr")
            assert rows.count() == len(DECLARED)
            for schedule in DECLARED:
                row = page.locator(f'tr[data-schedule="{schedule.id}"]')
                expect(row).to_contain_text(schedule.id)
                expect(row).to_contain_text(schedule.cron)
                expect(row.locator(".badge").first).to_be_visible()
            expect(page.locator('tr[data-timeline="deep_dreaming"]')).to_be_visible()
            # The session cookie is HttpOnly: no script on the page can read it.
            assert page.evaluate("document.cookie") == ""

            page.locator(
                'tr[data-schedule="dlq_cleanup"] button', has_text="Pause"
            ).click()
            expect(page.get_by_role("status")).to_have_text("dlq_cleanup paused")
            expect(page.locator('tr[data-schedule="dlq_cleanup"]')).to_have_attribute(
                "data-health", "paused"
            )
            with engine.connect() as connection:
                assert (
                    connection.execute(
                        sa.text(
                            "SELECT enabled FROM schedules WHERE id = 'dlq_cleanup'"
                        )
                    ).scalar_one()
                    is False
                )
            page.locator(
                'tr[data-schedule="dlq_cleanup"] button', has_text="Resume"
            ).click()
            expect(page.get_by_role("status")).to_have_text("dlq_cleanup resumed")

            page.locator(
                'tr[data-schedule="clean_finished_jobs"] button', has_text="Run now"
            ).click()
            expect(page.get_by_role("status")).to_contain_text(
                "clean_finished_jobs: deferred as job"
            )
            page.locator(
                'tr[data-schedule="clean_finished_jobs"] button', has_text="Run now"
            ).click()
            expect(page.get_by_role("alert")).to_contain_text(
                "already has a run waiting"
            )

            page.click("text=Sign out")
            expect(page.locator("#token")).to_be_visible()
            page.goto(admin_url)
            expect(page.locator("#token")).to_be_visible()
        finally:
            browser.close()
