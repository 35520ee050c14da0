"""The schedule page, the queues page and every action of the pages, through the
HTTP client as the browser sends them: each action needs a live session and the
session's CSRF value, and changes nothing without them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from agnt_jobs.admin import auth
from agnt_jobs.scheduler import deploy
from agnt_jobs.scheduler.worker import HEARTBEAT, AgntApp
from tests.support.admin_data import (
    EXPLODE,
    HEADERS,
    NIGHTLY,
    TIDY,
    TOKEN,
    defer_tick,
    drain,
    make_app,
)

UI = "/admin/scheduler/ui"


def _sign_in(client: TestClient) -> str:
    client.post(f"{UI}/login", data={"token": TOKEN})
    page = client.get(UI)
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


def _scalar(engine: Engine, query: str) -> object:
    with engine.connect() as connection:
        return connection.execute(sa.text(query)).scalar_one_or_none()


@pytest.fixture
async def seeded(
    db_url: str, engine: Engine, client_for: Callable[[AgntApp], TestClient]
) -> TestClient:
    """tidy with two finished runs, explode with a failed one, nightly waiting."""
    app = make_app(db_url, [TIDY, EXPLODE, NIGHTLY], failing=[EXPLODE.id])
    client = client_for(app)
    async with app.open_async():
        await deploy.sync_table(app)
    now = datetime.now(UTC)
    assert defer_tick(engine, TIDY, TIDY.latest_at(now)) == "deferred"
    assert defer_tick(engine, EXPLODE, EXPLODE.latest_at(now)) == "deferred"
    await drain(app)
    assert client.post("/admin/scheduler/tidy/run", headers=HEADERS).status_code == 202
    await drain(app)
    assert defer_tick(engine, NIGHTLY, NIGHTLY.latest_at(now)) == "deferred"
    return client


def test_a_schedule_page_shows_settings_words_figures_chart_and_history(
    seeded: TestClient, engine: Engine
) -> None:
    client = seeded
    _sign_in(client)
    page = client.get(f"{UI}/schedules/tidy")
    assert page.status_code == 200
    text = page.text
    assert "Every 5 minutes" in text
    assert "<code>*/5 * * * *</code>" in text
    # The next five runs, each in WITA with its UTC.
    next_runs = text.split('id="next-runs"', 1)[1].split("</table>", 1)[0]
    assert next_runs.count("<time ") == 5 and next_runs.count(" UTC") == 5
    figures = text.split('id="figures"', 1)[1].split('id="chart"', 1)[0]
    assert "100.0 %" in figures and "2 of 2 ended" in figures
    assert re.search(r"p50 \d+ ms", figures), figures
    chart = text.split('id="chart"', 1)[1].split("</svg>", 1)[0]
    assert chart.count('class="run"') == 2
    history = text.split('id="history"', 1)[1].split("</table>", 1)[0]
    assert history.count("data-run=") == 2
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in text and " onclick=" not in text

    failed = client.get(f"{UI}/schedules/explode", params={"status": "failed"}).text
    assert 'data-status="failed"' in failed and "0.0 %" in failed
    assert ">Retry</button>" in failed
    none = client.get(f"{UI}/schedules/tidy", params={"status": "failed"}).text
    assert "No run matches these filters" in none
    bad = client.get(f"{UI}/schedules/tidy", params={"since": "yesterday"})
    assert bad.status_code == 200 and "is not a date and time" in bad.text

    waiting = client.get(f"{UI}/schedules/nightly").text
    assert waiting.count("data-waiting=") == 1

    assert client.get(f"{UI}/schedules/nope").status_code == 404
    assert client.get(f"{UI}/schedules/a%00b").status_code == 422
    # Signed out, a page is the sign-in form.
    client.cookies.clear()
    assert 'name="token"' in client.get(f"{UI}/schedules/tidy").text


def test_the_queues_page_shows_queues_workers_silent_and_gone(
    seeded: TestClient, engine: Engine
) -> None:
    with engine.begin() as connection:
        live, silent = (
            connection.execute(
                sa.text(
                    "INSERT INTO procrastinate_workers (last_heartbeat) "
                    "VALUES (now()), (now() - interval '1 hour') RETURNING id"
                )
            )
            .scalars()
            .all()
        )
        connection.execute(
            sa.text(
                "INSERT INTO schedule_workers (worker_id, hostname, pid, deployed) "
                "VALUES (:live, 'host-a', 101, '{}'), (:silent, 'host-b', 102, '{}'),"
                " (999999, 'host-c', 103, '{}')"
            ),
            {"live": live, "silent": silent},
        )
        connection.exec_driver_sql(
            HEARTBEAT,
            {"worker_id": live, "starved": 'too many connections for role "agnt"'},
        )
        waiting = connection.execute(
            sa.text("SELECT id FROM procrastinate_jobs WHERE status = 'todo'")
        ).scalar_one()
        connection.execute(
            sa.text(
                "UPDATE procrastinate_jobs SET status = 'doing', worker_id = :w "
                "WHERE id = :id"
            ),
            {"w": live, "id": waiting},
        )
    client = seeded
    _sign_in(client)
    text = client.get(f"{UI}/queues").text
    queue = text.split('data-queue="default"', 1)[1].split("</tr>", 1)[0]
    assert "<td>0</td><td>1</td>" in queue
    row = text.split(f'data-worker="{live}"', 1)[1].split("</tr>", 1)[0]
    assert "host-a" in row and "101" in row and f"nightly</code> {waiting}" in row
    assert "data-silent" not in row
    assert 'data-starved="true"' in row and "too many connections for role" in row
    silent_row = text.split(f'data-worker="{silent}"', 1)[1].split("</tr>", 1)[0]
    assert 'data-silent="true"' in silent_row and "host-b" in silent_row
    assert ">silent</span>" in silent_row
    assert 'data-gone="999999"' in text


@dataclass(frozen=True)
class Action:
    name: str
    path: str
    form: dict[str, str]
    # SQL whose answer the action changes.
    probe: str


def _actions(engine: Engine) -> list[Action]:
    with engine.connect() as connection:
        failed = connection.execute(
            sa.text("SELECT job_id FROM job_runs WHERE task_name = 'explode'")
        ).scalar_one()
        waiting = connection.execute(
            sa.text("SELECT id FROM procrastinate_jobs WHERE status = 'todo'")
        ).scalar_one()
    later = datetime.now(UTC) + timedelta(days=2)
    at = later.astimezone(ZoneInfo("Asia/Makassar")).strftime("%Y-%m-%dT%H:%M")
    jobs = "SELECT count(*) FROM procrastinate_jobs"
    return [
        Action("run", f"{UI}/tidy/run", {}, jobs),
        Action("run at", f"{UI}/tidy/run-at", {"at": at}, jobs),
        Action(
            "pause",
            f"{UI}/tidy/pause",
            {},
            "SELECT enabled FROM schedules WHERE id = 'tidy'",
        ),
        Action(
            "edit",
            f"{UI}/tidy/edit",
            {"cron": "*/7 * * * *"},
            "SELECT cron FROM schedules WHERE id = 'tidy'",
        ),
        Action(
            "cancel",
            f"{UI}/runs/{waiting}/cancel",
            {},
            f"SELECT status::text FROM procrastinate_jobs WHERE id = {waiting}",
        ),
        Action(
            "retry",
            f"{UI}/runs/{failed}/retry",
            {},
            "SELECT count(*) FROM job_run_actions",
        ),
    ]


def test_every_action_needs_the_session_and_its_csrf_value(
    seeded: TestClient, engine: Engine
) -> None:
    client = seeded
    for action in _actions(engine):
        before = _scalar(engine, action.probe)
        client.cookies.clear()
        signed_out = client.post(
            action.path, data={**action.form, "csrf": "x"}, follow_redirects=False
        )
        assert signed_out.status_code == 401, action.name
        csrf = _sign_in(client)
        for wrong in ("", "0" * 64, csrf[:-1]):
            stale = client.post(
                action.path, data={**action.form, "csrf": wrong}, follow_redirects=False
            )
            assert stale.status_code == 403, (action.name, wrong)
        # The JSON API's token does not stand in for the page's CSRF value.
        assert (
            client.post(
                action.path, data=action.form, headers=HEADERS, follow_redirects=False
            ).status_code
            == 403
        )
        assert _scalar(engine, action.probe) == before, action.name
        done = client.post(
            action.path,
            data={**action.form, "csrf": csrf, "back": f"{UI}/schedules/tidy"},
            follow_redirects=False,
        )
        assert done.status_code == 303, (action.name, done.text[:300])
        assert done.headers["location"].startswith(f"{UI}/schedules/tidy?notice="), (
            action.name,
            done.headers["location"],
        )
        assert _scalar(engine, action.probe) != before, action.name


def test_reset_and_resume_need_the_session_too(
    seeded: TestClient, engine: Engine
) -> None:
    client = seeded
    csrf = _sign_in(client)
    client.post(f"{UI}/tidy/edit", data={"cron": "*/7 * * * *", "csrf": csrf})
    client.post(f"{UI}/tidy/pause", data={"csrf": csrf})
    for path in (f"{UI}/tidy/reset", f"{UI}/tidy/resume"):
        assert client.post(path, data={"csrf": "x"}).status_code == 403
    assert _scalar(engine, "SELECT cron FROM schedules WHERE id = 'tidy'") == (
        "*/7 * * * *"
    )
    client.post(f"{UI}/tidy/reset", data={"csrf": csrf})
    client.post(f"{UI}/tidy/resume", data={"csrf": csrf})
    assert _scalar(engine, "SELECT cron FROM schedules WHERE id = 'tidy'") == (
        "*/5 * * * *"
    )
    assert _scalar(engine, "SELECT enabled FROM schedules WHERE id = 'tidy'") is True
    client.cookies.clear()
    for path in (f"{UI}/tidy/reset", f"{UI}/tidy/resume"):
        assert client.post(path, data={"csrf": csrf}).status_code == 401


def test_edit_preview_refusal_and_where_the_page_returns(
    seeded: TestClient, engine: Engine
) -> None:
    client = seeded
    csrf = _sign_in(client)
    preview = client.post(
        f"{UI}/tidy/edit",
        data={"cron": "0 9 * * *", "preview": "1", "csrf": csrf},
        follow_redirects=False,
    )
    assert "Preview" in preview.headers["location"]
    shown = client.get(preview.headers["location"]).text
    assert "would run at" in shown and "09:00" in shown
    assert _scalar(engine, "SELECT cron FROM schedules WHERE id = 'tidy'") == (
        "*/5 * * * *"
    )
    refused = client.post(
        f"{UI}/tidy/edit",
        data={"cron": "61 * * * *", "csrf": csrf, "back": f"{UI}/schedules/tidy"},
    )
    assert refused.status_code == 200 and 'role="alert"' in refused.text
    assert "schedules.cron" in refused.text
    nul = client.post(f"{UI}/tidy/edit", data={"cron": "*/5 *\x00 * * *", "csrf": csrf})
    # Text no form of the page can send is refused before any route reads it.
    assert nul.status_code == 422 and nul.json()["detail"][0]["loc"] == [
        "body",
        "cron",
    ]
    assert (
        _scalar(engine, "SELECT count(*) FROM schedule_changes WHERE source = 'admin'")
        == 0
    )
    # Only a page of ours is a place to return to.
    for elsewhere in ("https://evil.example/", "//evil.example/x", "/other", "/\\evil"):
        done = client.post(
            f"{UI}/tidy/pause",
            data={"csrf": csrf, "back": elsewhere},
            follow_redirects=False,
        )
        assert done.headers["location"].startswith(f"{UI}?"), elsewhere
    kept = client.post(
        f"{UI}/tidy/resume",
        data={"csrf": csrf, "back": f"{UI}/schedules/tidy?status=failed&notice=old"},
        follow_redirects=False,
    )
    assert kept.headers["location"] == (
        f"{UI}/schedules/tidy?status=failed&notice=tidy+resumed"
    )


def test_the_refresh_script_is_ours_and_typed(seeded: TestClient) -> None:
    script = seeded.get(f"{UI}/static/refresh.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["x-content-type-options"] == "nosniff"
    assert "data-refresh" in script.text and "data-confirm" in script.text
    _sign_in(seeded)
    page = seeded.get(UI).text
    assert f'<script src="{UI}/static/refresh.js" defer></script>' in page
    assert '<main data-refresh="' in page
    assert auth.SESSION_COOKIE in seeded.cookies


def test_payments_made_twice_show_above_the_schedules_until_refunded(
    seeded: TestClient, engine: Engine
) -> None:
    _sign_in(seeded)
    assert 'id="duplicate-payments"' not in seeded.get(UI).text
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                """
                WITH venue AS (INSERT INTO venues (name) VALUES ('v') RETURNING id),
                fee AS (
                    INSERT INTO fee_collections (venue_id, stripe_customer_id, amount)
                    SELECT id, 'cus_1', 5 FROM venue RETURNING id)
                INSERT INTO duplicate_payments (
                    kind, action, stripe_object, fee_id, payment_intent,
                    stripe_customer_id, amount, currency, idempotency_key, status)
                SELECT 'payment', 'refund', 'pi_' || s, fee.id, 'pi_' || s, 'cus_1',
                       5, 'IDR', 'refund:pi_' || s, s
                FROM fee, unnest(ARRAY['REPORTED', 'REFUNDED']) AS s
                """
            )
        )

    page = seeded.get(UI).text
    registry_json = seeded.get("/admin/scheduler", headers=HEADERS).json()

    assert registry_json["duplicate_payments"] == {"REPORTED": 1}
    shown = re.search(r'<p id="duplicate-payments">(.*?)</p>', page, re.S)
    assert shown and "reported: 1" in shown.group(1)
    assert "refunded" not in shown.group(1)
