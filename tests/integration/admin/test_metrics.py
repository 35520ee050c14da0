"""GET /metrics: Prometheus' text format, parsed with prometheus_client's own
parser, each figure compared with SQL on the same database; the door it shares
with the API; and the example alert rules checked by promtool."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Engine

from agnt_jobs.scheduler import deploy
from agnt_jobs.scheduler.worker import HEARTBEAT, AgntApp
from tests.support import bookings_data as data
from tests.support.admin_data import (
    EXPLODE,
    HALTED,
    HEADERS,
    NIGHTLY,
    TIDY,
    TOKEN,
    defer_tick,
    drain,
    make_app,
)

DOCS = Path(__file__).resolve().parents[3] / "docs"


def _samples(text: str) -> dict[str, list[Sample]]:
    by_name: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            by_name.setdefault(sample.name, []).append(sample)
    return by_name


def _value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    (match,) = [s for s in samples[name] if s.labels == labels]
    return match.value


def _scalar(engine: Engine, query: str) -> object:
    with engine.connect() as connection:
        return connection.execute(sa.text(query)).scalar_one()


def _seed_backlogs(engine: Engine) -> None:
    now = datetime.now(UTC)
    user = data.user(engine)
    venue = data.venue(engine)
    for n, status in enumerate(["PENDING", "PENDING", "FAILED", "SENT"]):
        data.insert(
            engine,
            "send_queue",
            idempotency_key=f"metrics:{n}",
            kind="test",
            user_id=user,
            channel="whatsapp",
            recipient="+62811",
            body="hi",
            status=status,
            next_attempt_at=now - timedelta(minutes=10 * (n + 1)),
        )
    endpoint = data.insert(
        engine,
        "webhook_endpoints",
        venue_id=venue,
        url="http://127.0.0.1:9/hook",
        secret="s",
    )
    for n, status in enumerate(["FAILED", "FAILED", "DELIVERED"]):
        data.insert(
            engine,
            "webhook_deliveries",
            endpoint_id=endpoint,
            event_id=f"evt-{n}",
            event_type="booking.confirmed",
            payload=Jsonb({}),
            status=status,
        )
    for status in ["PENDING", "PENDING", "DISPATCH_FAILED", "DISPATCHED"]:
        booking = data.booking(
            engine, user, venue, "PENDING_VENUE", now + timedelta(days=1)
        )
        data.envelope(engine, booking, status)
    for n, resolved in enumerate([None, None, now]):
        data.insert(
            engine,
            "dead_letters",
            source="send_queue" if n else "webhook",
            source_id=str(n),
            error_class="GatewayError",
            resolved_at=resolved,
        )
    fee = data.insert(
        engine, "fee_collections", venue_id=venue, stripe_customer_id="cus_1", amount=5
    )
    for n, status in enumerate(["TO_REFUND", "REPORTED", "REPORTED", "REFUNDED"]):
        data.insert(
            engine,
            "duplicate_payments",
            kind="payment",
            action="refund",
            stripe_object=f"pi_{n}",
            fee_id=fee,
            payment_intent=f"pi_{n}",
            stripe_customer_id="cus_1",
            amount=5,
            currency="IDR",
            idempotency_key=f"refund:pi_{n}",
            status=status,
        )


async def test_every_figure_is_what_sql_says(
    db_url: str, engine: Engine, client_for: Callable[[AgntApp], TestClient]
) -> None:
    app = make_app(db_url, [TIDY, EXPLODE, NIGHTLY, HALTED], failing=[EXPLODE.id])
    client = client_for(app)
    async with app.open_async():
        await deploy.sync_table(app)
    now = datetime.now(UTC)
    assert defer_tick(engine, TIDY, TIDY.latest_at(now)) == "deferred"
    assert defer_tick(engine, EXPLODE, EXPLODE.latest_at(now)) == "deferred"
    await drain(app)
    assert client.post("/admin/scheduler/tidy/run", headers=HEADERS).status_code == 202
    await drain(app)
    # One run waiting on its queue, deferred a minute ago.
    assert defer_tick(engine, NIGHTLY, NIGHTLY.latest_at(now)) == "deferred"
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE procrastinate_events SET at = now() - interval '1 minute' "
                "WHERE type = 'deferred' AND job_id = (SELECT job_id FROM "
                "schedule_ticks WHERE schedule_id = 'nightly')"
            )
        )
        connection.execute(
            sa.text("UPDATE schedules SET enabled = false WHERE id = 'halted'")
        )
        workers = (
            connection.execute(
                sa.text(
                    "INSERT INTO procrastinate_workers (last_heartbeat) VALUES "
                    "(now()), (now()), (now() - interval '1 hour') RETURNING id"
                )
            )
            .scalars()
            .all()
        )
        # One live worker and the silent one said they were starved: only the
        # live one counts.
        connection.execute(
            sa.text(
                "INSERT INTO schedule_workers (worker_id, hostname, pid, deployed, "
                "starved_since, starved_reason) VALUES (:live, 'h', 1, '{}', NULL, "
                "NULL), (:silent, 'h', 2, '{}', now(), 'too many clients already')"
            ),
            {"live": workers[0], "silent": workers[2]},
        )
        connection.exec_driver_sql(
            HEARTBEAT, {"worker_id": workers[0], "starved": "too many clients already"}
        )
    _seed_backlogs(engine)

    response = client.get("/metrics", headers=HEADERS)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = _samples(response.text)

    with engine.connect() as connection:
        schedules = connection.execute(
            sa.text("SELECT id, enabled, next_run_at FROM schedules")
        ).all()
    assert {s.labels["schedule"] for s in samples["agnt_schedule_enabled"]} == {
        row.id for row in schedules
    }
    for row in schedules:
        assert _value(samples, "agnt_schedule_enabled", schedule=row.id) == float(
            row.enabled
        )
        assert _value(
            samples, "agnt_schedule_next_run_timestamp_seconds", schedule=row.id
        ) == pytest.approx(row.next_run_at.timestamp())
    tidy_success = _scalar(
        engine,
        "SELECT max(finished_at) FROM job_runs WHERE task_name = 'tidy' "
        "AND status = 'succeeded'",
    )
    assert _value(
        samples, "agnt_schedule_last_success_timestamp_seconds", schedule="tidy"
    ) == pytest.approx(tidy_success.timestamp())  # type: ignore[attr-defined]
    never = _value(
        samples, "agnt_schedule_last_success_timestamp_seconds", schedule="explode"
    )
    assert never != never  # NaN: it never succeeded

    assert _value(samples, "agnt_job_runs_total", job="tidy", status="succeeded") == 2
    assert _value(samples, "agnt_job_runs_total", job="explode", status="failed") == (
        _scalar(engine, "SELECT count(*) FROM job_runs WHERE task_name = 'explode'")
    )
    assert _value(samples, "agnt_job_run_duration_seconds_count", job="tidy") == 2
    assert (
        _value(samples, "agnt_job_run_duration_seconds_bucket", job="tidy", le="+Inf")
        == 2
    )
    assert _value(
        samples, "agnt_job_run_duration_seconds_sum", job="tidy"
    ) == pytest.approx(
        _scalar(
            engine,
            "SELECT sum(extract(epoch FROM finished_at - started_at))::float8 "
            "FROM job_runs WHERE task_name = 'tidy'",
        )
    )
    bounds = [
        s
        for s in samples["agnt_job_run_duration_seconds_bucket"]
        if s.labels["job"] == "tidy"
    ]
    assert [s.value for s in bounds] == sorted(s.value for s in bounds)

    assert _value(samples, "agnt_queue_jobs", queue="default", status="todo") == 1
    assert _value(samples, "agnt_queue_jobs", queue="default", status="doing") == 0
    assert _value(
        samples, "agnt_queue_oldest_waiting_seconds", queue="default"
    ) == pytest.approx(60, abs=10)

    assert _value(samples, "agnt_workers_alive") == 2
    assert _value(samples, "agnt_workers_silent") == 1
    assert _value(samples, "agnt_workers_starved") == 1

    assert _value(samples, "agnt_send_queue_messages", status="PENDING") == 2
    assert _value(samples, "agnt_send_queue_messages", status="FAILED") == 1
    assert _value(samples, "agnt_send_queue_oldest_due_seconds") == pytest.approx(
        30 * 60, abs=30
    )
    assert _value(samples, "agnt_webhook_retry_backlog") == 2
    assert _value(samples, "agnt_a2a_envelopes", status="PENDING") == 2
    assert _value(samples, "agnt_a2a_envelopes", status="DISPATCH_FAILED") == 1
    assert _value(samples, "agnt_dead_letters_unresolved", source="send_queue") == 1
    assert _value(samples, "agnt_dead_letters_unresolved", source="webhook") == 1
    for status, payments in (("TO_REFUND", 1), ("REPORTED", 2), ("REFUNDED", 1)):
        assert (
            _value(samples, "agnt_duplicate_payments", kind="payment", status=status)
            == payments
        )


async def test_counters_outlive_the_history_retention(
    db_url: str, engine: Engine, client_for: Callable[[AgntApp], TestClient]
) -> None:
    app = make_app(db_url, [TIDY])
    client = client_for(app)
    async with app.open_async():
        await deploy.sync_table(app)
    now = datetime.now(UTC)
    assert defer_tick(engine, TIDY, TIDY.latest_at(now)) == "deferred"
    await drain(app)
    before = _samples(client.get("/metrics", headers=HEADERS).text)
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM job_runs"))
    after = _samples(client.get("/metrics", headers=HEADERS).text)
    for samples in (before, after):
        assert (
            _value(samples, "agnt_job_runs_total", job="tidy", status="succeeded") == 1
        )


def test_the_door_of_metrics(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get(
        "/metrics", headers={"X-Internal-Token": "x" * 40}
    ).status_code == (403)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/metrics", headers=bearer).status_code == 200
    assert client.get("/metrics", headers=HEADERS).status_code == 200
    wrong_bearer = {"Authorization": "Bearer not-the-token-at-all-but-long-enough"}
    assert client.get("/metrics", headers=wrong_bearer).status_code == 403


def test_the_example_alert_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("needs promtool (Debian's prometheus package; .ci/run installs it)")
    rules = DOCS / "alerts.yml"
    checked = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout
    tested = subprocess.run(
        [promtool, "test", "rules", str(DOCS / "alerts.test.yml")],
        capture_output=True,
        text=True,
        cwd=DOCS,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
