"""The admin pages end to end in headless Chromium: the admin app served by uvicorn
on a real socket, a person signs in with the token, sees every declared schedule,
runs and pauses one with the page's buttons, opens a schedule's page and watches a
new run appear without reloading, edits the schedule (and meets Postgres's
refusal), cancels and retries a run, and signs out, after which the old cookie
opens nothing.

With ``AGNT_SCREENSHOTS=DIR`` set, the schedule and queues pages are saved there
as PNG files (how docs/img's were made).

It needs Debian's ``chromium`` (``.ci/run`` installs it); playwright drives that
binary and downloads no browser of its own.
"""

from __future__ import annotations

import os
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
from agnt_jobs.admin import create_app, formats
from agnt_jobs.scheduler import deploy
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
        await deploy.sync_table(app)  # as a worker of this code does at start


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
            # The page asks before pausing: the person says yes.
            page.on("dialog", lambda dialog: dialog.accept())
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
                expect(row).to_contain_text(formats.cron_words(schedule.cron))
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


def _finished_runs(engine: Engine, job: str, durations: list[tuple[float, str]]) -> int:
    """Runs of ``job`` that started in the last hours and ended as given, written
    as the worker writes them (the counters' trigger included); the newest id."""
    with engine.begin() as connection:
        first = connection.execute(
            sa.text("SELECT coalesce(max(job_id), 0) + 1000 FROM job_runs")
        ).scalar_one()
        for n, (seconds, status) in enumerate(durations):
            connection.execute(
                sa.text(
                    "INSERT INTO job_runs (job_id, attempt, task_name, queue_name, "
                    "started_at) VALUES (:id, 1, :job, 'default', "
                    "now() - make_interval(mins => :ago))"
                ),
                {"id": first + n, "job": job, "ago": 10 * (len(durations) - n)},
            )
            connection.execute(
                sa.text(
                    "UPDATE job_runs SET status = :status, finished_at = started_at "
                    "+ make_interval(secs => :seconds), error = CASE WHEN :status = "
                    "'failed' THEN 'venue gateway said no' END WHERE job_id = :id"
                ),
                {"id": first + n, "status": status, "seconds": seconds},
            )
    return int(first) + len(durations) - 1


def test_a_schedule_page_edit_cancel_retry_and_sign_out(
    admin_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("AGNT_ADMIN_REFRESH_SECONDS", "1")
    agnt_settings.get_settings.cache_clear()
    job = "dlq_cleanup"
    (declared_cron,) = [s.cron for s in DECLARED if s.id == job]
    _finished_runs(
        engine,
        job,
        [
            (0.21, "succeeded"),
            (0.34, "succeeded"),
            (1.8, "succeeded"),
            (0.29, "failed"),
            (0.52, "succeeded"),
            (0.41, "succeeded"),
        ],
    )
    shots = os.environ.get("AGNT_SCREENSHOTS")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.on("dialog", lambda dialog: dialog.accept())
            page.goto(admin_url)
            page.fill("#token", TOKEN)
            page.click("button[type=submit]")
            page.locator(f'tr[data-schedule="{job}"] a', has_text=job).click()
            declared_words = formats.cron_words(declared_cron)
            expect(page.locator("#cron-words")).to_contain_text(declared_words)
            expect(page.locator("#history tr[data-run]")).to_have_count(6)
            expect(page.locator("#chart rect.run")).to_have_count(6)
            expect(page.locator("#figures")).to_contain_text("83.3 %")
            # Times are WITA, with their UTC on hover.
            started = page.locator("#history time").first
            assert started.get_attribute("title").endswith(" UTC")

            # A run that ends meanwhile appears without the page being reloaded.
            page.evaluate("window.stillThisPage = true")
            newest = _finished_runs(engine, job, [(0.12, "succeeded")])
            expect(page.locator(f'#history tr[data-run="{newest}"]')).to_be_visible(
                timeout=15_000
            )
            assert page.evaluate("window.stillThisPage") is True
            # Filters are kept across refreshes.
            page.select_option("select[name=status]", "failed")
            page.click("text=Filter")
            expect(page.locator("#history tr[data-run]")).to_have_count(1)
            page.wait_for_timeout(2_500)
            expect(page.locator("#history tr[data-run]")).to_have_count(1)
            assert "status=failed" in page.url

            if shots:
                page.goto(page.url.split("?", 1)[0])
                expect(page.locator("#chart rect.run")).to_have_count(7)
                page.screenshot(path=f"{shots}/admin-schedule.png", full_page=True)

            # Edit: Postgres refuses a bad cron, then takes a good one; reset.
            page.click("#edit summary")
            page.fill("#edit input[name=cron]", "61 * * * *")
            page.click("#edit button:text-is('Save')")
            expect(page.get_by_role("alert")).to_contain_text("schedules.cron")
            page.click("#edit summary")
            page.fill("#edit input[name=cron]", "45 4 * * *")
            page.click("#edit button:text-is('Preview next runs')")
            expect(page.get_by_role("status")).to_contain_text("nothing changed")
            page.click("#edit summary")
            page.fill("#edit input[name=cron]", "45 4 * * *")
            page.click("#edit button:text-is('Save')")
            expect(page.get_by_role("status")).to_have_text(f"{job} changed")
            expect(page.locator("#cron-words")).to_contain_text("At 04:45")
            with engine.connect() as connection:
                assert (
                    connection.execute(
                        sa.text("SELECT cron FROM schedules WHERE id = :id"),
                        {"id": job},
                    ).scalar_one()
                    == "45 4 * * *"
                )
            page.click("button:text-is('Reset to declared')")
            expect(page.get_by_role("status")).to_contain_text("reset")
            expect(page.locator("#cron-words")).to_contain_text(declared_words)

            # Cancel a waiting run, then retry it from its own page.
            page.click("button:text-is('Run now')")
            waiting = page.locator("#waiting tr[data-waiting]")
            expect(waiting).to_have_count(1)
            run_id = waiting.get_attribute("data-waiting")
            waiting.locator("button:text-is('Cancel')").click()
            expect(page.get_by_role("status")).to_have_text(f"Run {run_id} cancelled")
            expect(page.locator("#waiting tr[data-waiting]")).to_have_count(0)
            page.goto(f"{admin_url}/runs/{run_id}")
            expect(page.locator("#run-status")).to_have_text("cancelled")
            page.click("button:text-is('Retry')")
            expect(page.get_by_role("status")).to_contain_text(
                f"Run {run_id} retried as job"
            )

            # Two workers on two hosts, one of them silent for ten minutes, and one
            # that stopped.
            with engine.begin() as connection:
                live, silent = (
                    connection.execute(
                        sa.text(
                            "INSERT INTO procrastinate_workers (last_heartbeat) VALUES "
                            "(now() - interval '4 seconds'), "
                            "(now() - interval '10 minutes') RETURNING id"
                        )
                    )
                    .scalars()
                    .all()
                )
                connection.execute(
                    sa.text(
                        "INSERT INTO schedule_workers (worker_id, hostname, pid, "
                        "started_at, deployed) VALUES "
                        "(:live, 'jobs-1.internal', 4711, now() - interval '3 hours',"
                        " '{}'), (:silent, 'jobs-2.internal', 913, now() - interval "
                        "'2 days', '{}'), (:silent + 100, 'jobs-2.internal', 655, "
                        "now() - interval '3 days', '{}')"
                    ),
                    {"live": live, "silent": silent},
                )
            page.goto(f"{admin_url}/queues")
            expect(page.locator('#queues tr[data-queue="default"]')).to_be_visible()
            expect(page.locator(f'#workers tr[data-worker="{live}"]')).to_contain_text(
                "jobs-1.internal"
            )
            expect(
                page.locator(f'#workers tr[data-worker="{silent}"]')
            ).to_have_attribute("data-silent", "true")
            expect(page.locator("#gone tr[data-gone]")).to_have_count(1)
            if shots:
                page.screenshot(path=f"{shots}/admin-queues.png", full_page=True)

            # Sign out; the cookie kept from before opens nothing any more.
            kept = context.cookies()
            page.click("text=Sign out")
            expect(page.locator("#token")).to_be_visible()
            context.add_cookies(kept)
            page.goto(f"{admin_url}/schedules/{job}")
            expect(page.locator("#token")).to_be_visible()
            assert page.locator("#history").count() == 0
        finally:
            browser.close()


def test_a_hostile_id_links_and_acts_on_itself_only(
    admin_url: str, engine: Engine
) -> None:
    """A row whose id is a path of its own (written past the triggers by the
    table's owner): its links and forms encode it as one segment, so "Run now"
    cannot pause monthly_invoice; the row shows as broken."""
    from playwright.sync_api import expect, sync_playwright

    hostile = "monthly_invoice/pause?x="
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE schedules DISABLE TRIGGER USER"))
        connection.execute(
            sa.text(
                "INSERT INTO schedules (id, task_name, cron, description) "
                "VALUES (:id, 'monthly_invoice', '0 9 1 * *', 'hostile')"
            ),
            {"id": hostile},
        )
        connection.execute(sa.text("ALTER TABLE schedules ENABLE TRIGGER USER"))
    encoded = "monthly_invoice%2Fpause%3Fx%3D"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.goto(admin_url)
            page.fill("#token", TOKEN)
            page.click("button[type=submit]")
            row = page.locator(f'tr[data-schedule="{hostile}"]')
            expect(row).to_have_attribute("data-health", "broken")
            assert row.locator("a").first.get_attribute("href") == (
                f"/admin/scheduler/ui/schedules/{encoded}"
            )
            run_now = row.locator("form", has_text="Run now")
            assert run_now.get_attribute("action") == (
                f"/admin/scheduler/ui/{encoded}/run"
            )
            run_now.locator("button").click()
            page.wait_for_load_state()
            with engine.connect() as connection:
                enabled = connection.execute(
                    sa.text(
                        "SELECT enabled FROM schedules WHERE id = 'monthly_invoice'"
                    )
                ).scalar_one()
            assert enabled is True
        finally:
            browser.close()


# The largest instant Postgres stores (timestamptz), far past Python's year 9999.
LARGEST = "294276-12-31 23:59:59.999999+00"


@pytest.fixture
async def waiting_for_ever(app: AgntApp, engine: Engine) -> int:
    """A run of dlq_cleanup that waits for the largest instant (moved there by
    SQL: the admin view refuses such a time)."""
    async with app.open_async():
        job_id = await app.tasks["dlq_cleanup"].defer_async()
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE procrastinate_jobs SET scheduled_at = CAST(:at AS timestamptz)"
                " WHERE id = :id"
            ),
            {"at": LARGEST, "id": job_id},
        )
    return job_id


def test_a_schedule_whose_run_waits_for_the_largest_time(
    admin_url: str, waiting_for_ever: int
) -> None:
    """The run shows on its schedule's page and its own page, its time written
    as Postgres writes it; neither page fails."""
    from playwright.sync_api import expect, sync_playwright

    job, job_id = "dlq_cleanup", waiting_for_ever
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.goto(admin_url)
            page.fill("#token", TOKEN)
            page.click("button[type=submit]")
            page.locator(f'tr[data-schedule="{job}"] a', has_text=job).click()
            waiting = page.locator(f'#waiting tr[data-waiting="{job_id}"]')
            expect(waiting).to_contain_text(LARGEST)
            waiting.locator("a", has_text=str(job_id)).click()
            expect(page.locator("main")).to_contain_text(f"{job}")
            assert page.url.endswith(f"/runs/{job_id}")
        finally:
            browser.close()
