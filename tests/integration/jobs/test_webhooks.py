"""drain_webhook_retries against a real Postgres and local receivers that verify
our signature: signed retries, backoff, dead-lettering, disabling endpoints,
crash safety and two drains at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs.clients import webhooks as signing
from agnt_jobs.jobs import webhooks
from agnt_jobs.settings import Settings
from agnt_jobs.standins.ops import WebhookReceiver
from agnt_jobs.standins.server import Reply
from tests.support.jobs import context, executions, run_concurrently
from tests.support.lifecycle_data import count, scalar
from tests.support.webhooks_data import add_deliveries, add_endpoint, make_due

SECRET = "whsec_test_5b1f"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET).start()
    yield server
    server.stop()


def _statuses(engine: Engine) -> dict[str, int]:
    with engine.connect() as c:
        rows = c.execute(
            sa.text("SELECT status, count(*) FROM webhook_deliveries GROUP BY status")
        )
        return dict(rows.all())


def test_due_failed_deliveries_are_sent_signed_and_marked_delivered(
    engine: Engine, env: Settings, receiver: WebhookReceiver
) -> None:
    with engine.begin() as c:
        endpoint = add_endpoint(c, receiver.url + "/hooks", SECRET)
        due = add_deliveries(c, endpoint, 3, payload={"booking_id": 7})
        later = add_deliveries(c, endpoint, 1, due_in_seconds=600, prefix="later")
        delivered = add_deliveries(c, endpoint, 1, status="DELIVERED", prefix="done")
        c.execute(sa.text("UPDATE webhook_endpoints SET dead_count = 2"))

    result = webhooks.drain_webhook_retries(context(engine, env))

    assert result == {"delivered": 3, "failed": 0, "dead": 0, "endpoints_disabled": 0}
    assert receiver.rejected == 0
    assert sorted(receiver.accepted) == sorted(str(i) for i in due)
    request = receiver.received[0]
    assert request.path == "/hooks"
    assert request.headers["x-agnt-event"] == "booking.confirmed"
    assert request.json()["booking_id"] == 7
    assert request.body == signing.body_bytes(request.json())
    with engine.connect() as c:
        states = dict(
            c.execute(sa.text("SELECT id, status FROM webhook_deliveries")).all()
        )
        assert scalar(c, "SELECT dead_count FROM webhook_endpoints") == 0
    assert [states[i] for i in due] == ["DELIVERED"] * 3
    assert states[later[0]] == "FAILED" and states[delivered[0]] == "DELIVERED"

    assert webhooks.drain_webhook_retries(context(engine, env))["delivered"] == 0
    assert len(receiver.received) == 3


def test_a_wrong_secret_is_rejected_by_the_receiver_and_retried(
    engine: Engine, env: Settings, receiver: WebhookReceiver
) -> None:
    with engine.begin() as c:
        endpoint = add_endpoint(c, receiver.url, "not-the-secret")
        add_deliveries(c, endpoint)
    result = webhooks.drain_webhook_retries(context(engine, env))
    assert (result["failed"], receiver.rejected) == (1, 1)
    with engine.connect() as c:
        row = c.execute(
            sa.text("SELECT status, attempts, last_status_code FROM webhook_deliveries")
        ).one()
    assert tuple(row) == ("FAILED", 2, 401)


def test_a_failing_receiver_gets_exponential_backoff_then_dead_letter(
    engine: Engine, env: Settings, receiver: WebhookReceiver
) -> None:
    receiver.answer(503)
    with engine.begin() as c:
        endpoint = add_endpoint(c, receiver.url, SECRET)
        (delivery,) = add_deliveries(c, endpoint)  # the backend's first try failed
    ctx = context(engine, env, webhook_max_attempts=4)
    waits = []
    for _ in range(3):
        result = webhooks.drain_webhook_retries(ctx)
        with engine.connect() as c:
            waits.append(
                scalar(
                    c,
                    "SELECT extract(epoch FROM next_attempt_at - now())::int "
                    "FROM webhook_deliveries",
                )
            )
        with engine.begin() as c:
            make_due(c)
    assert result == {"delivered": 0, "failed": 0, "dead": 1, "endpoints_disabled": 0}
    # attempts 2 and 3 failed: waits of 120 s and 240 s (base 60 s, doubling).
    assert 110 <= waits[0] <= 120 and 230 <= waits[1] <= 240
    assert _statuses(engine) == {"DEAD": 1}
    with engine.connect() as c:
        letter = c.execute(
            sa.text("SELECT source, source_id, error_class, attempts FROM dead_letters")
        ).one()
    assert tuple(letter) == ("webhook", str(delivery), "exhausted", 4)
    assert len(receiver.received) == 3
    assert webhooks.drain_webhook_retries(ctx)["dead"] == 0


def test_gone_kills_a_delivery_at_once(
    engine: Engine, env: Settings, receiver: WebhookReceiver
) -> None:
    receiver.answer(410)
    with engine.begin() as c:
        add_deliveries(c, add_endpoint(c, receiver.url, SECRET))
    assert webhooks.drain_webhook_retries(context(engine, env))["dead"] == 1
    with engine.connect() as c:
        assert scalar(c, "SELECT error_class FROM dead_letters") == "gone"


def test_too_many_dead_deliveries_disable_the_endpoint(
    engine: Engine, env: Settings, receiver: WebhookReceiver
) -> None:
    receiver.answer(500)
    with engine.begin() as c:
        bad = add_endpoint(c, receiver.url + "/bad", SECRET)
        add_deliveries(c, bad, 5, attempts=7)  # each on its last attempt
        add_deliveries(c, bad, 2, attempts=1, due_in_seconds=3600, prefix="queued")
    ctx = context(engine, env, webhook_disable_after_dead=3, webhook_concurrency=1)
    result = webhooks.drain_webhook_retries(ctx)
    # One chunk: all five were claimed before the third death disabled it.
    assert result["dead"] == 5 and result["endpoints_disabled"] == 1
    with engine.connect() as c:
        endpoint = c.execute(
            sa.text(
                "SELECT dead_count, disabled_at, disabled_reason FROM webhook_endpoints"
            )
        ).one()
    assert endpoint.dead_count == 5 and endpoint.disabled_at is not None
    assert endpoint.disabled_reason == "3 dead deliveries in a row"
    # The endpoint's other deliveries wait, untried, until it is re-enabled.
    with engine.begin() as c:
        make_due(c)
    assert webhooks.drain_webhook_retries(ctx)["failed"] == 0
    assert len(receiver.received) == 5


def test_a_success_resets_the_dead_count(
    engine: Engine, env: Settings, receiver: WebhookReceiver
) -> None:
    receiver.answer(500)
    with engine.begin() as c:
        endpoint = add_endpoint(c, receiver.url, SECRET)
        add_deliveries(c, endpoint, 2, attempts=8)
    ctx = context(engine, env, webhook_disable_after_dead=3)
    webhooks.drain_webhook_retries(ctx)
    receiver.answer(204)
    with engine.begin() as c:
        add_deliveries(c, endpoint, 1, prefix="ok")
    webhooks.drain_webhook_retries(ctx)
    receiver.answer(500)
    with engine.begin() as c:
        add_deliveries(c, endpoint, 2, attempts=8, prefix="again")
    assert webhooks.drain_webhook_retries(ctx)["endpoints_disabled"] == 0
    with engine.connect() as c:
        assert scalar(c, "SELECT dead_count FROM webhook_endpoints") == 2


def test_a_crashed_drain_is_resent_once_after_its_lease(
    engine: Engine, env: Settings, receiver: WebhookReceiver
) -> None:
    """The drain claimed and sent a delivery, then died before recording it. After
    the lease it is sent again with the same delivery id (the receiver's key to
    deduplicate), freshly signed, and ends DELIVERED."""
    with engine.begin() as c:
        (delivery,) = add_deliveries(c, add_endpoint(c, receiver.url, SECRET))
        row = c.execute(webhooks.CLAIM_DUE, {"limit": 10, "lease": 300}).one()
    with signing.WebhookSender() as sender:
        sender.deliver(
            row.url, row.secret, row.id, row.event_type, row.payload, int(time.time())
        )
    ctx = context(engine, env)
    assert webhooks.drain_webhook_retries(ctx)["delivered"] == 0  # still leased
    with engine.begin() as c:
        c.execute(
            sa.text(
                "UPDATE webhook_deliveries SET claimed_until = now() - interval '1s'"
            )
        )
    assert webhooks.drain_webhook_retries(ctx)["delivered"] == 1
    assert receiver.rejected == 0
    assert receiver.accepted == {str(delivery): 2}
    assert len({r.headers["x-agnt-delivery"] for r in receiver.received}) == 1
    assert _statuses(engine) == {"DELIVERED": 1}


def test_two_drains_at_once_send_each_delivery_once(
    engine: Engine, env: Settings, receiver: WebhookReceiver
) -> None:
    with engine.begin() as c:
        add_deliveries(c, add_endpoint(c, receiver.url, SECRET), 200)
    ctx = context(engine, env, webhook_concurrency=4)
    results = run_concurrently(lambda: webhooks.drain_webhook_retries(ctx))
    assert sum(r["delivered"] for r in results) == 200
    assert len(receiver.received) == 200
    assert set(receiver.accepted.values()) == {1}
    with engine.connect() as c:
        assert count(c, "webhook_deliveries", "status = 'DELIVERED'") == 200


def test_a_small_batch_drains_every_due_delivery_in_several_claims(
    engine: Engine, env: Settings, receiver: WebhookReceiver
) -> None:
    with engine.begin() as c:
        add_deliveries(c, add_endpoint(c, receiver.url, SECRET), 25)
    ctx = context(engine, env, webhook_batch_size=10, webhook_concurrency=3)
    with executions(engine, webhooks.CLAIM_DUE) as claims:
        result = webhooks.drain_webhook_retries(ctx)
    assert result["delivered"] == 25
    assert [(params["limit"], rows) for params, rows in claims] == [
        (10, 10),
        (10, 10),
        (10, 5),
    ]
    assert len(receiver.received) == 25 and set(receiver.accepted.values()) == {1}
    assert _statuses(engine) == {"DELIVERED": 25}


def test_a_late_answer_is_not_recorded_or_counted_by_a_drain_that_lost_its_lease(
    engine: Engine, env: Settings, receiver: WebhookReceiver
) -> None:
    """Drain A's lease runs out while the receiver holds A's request; drain B
    claims the delivery and records the receiver's 500 (FAILED, to retry). A's
    late 2xx then matches no row: the delivery stays as B recorded it, and A
    counts nothing delivered."""
    with engine.begin() as c:
        add_deliveries(c, add_endpoint(c, receiver.url, SECRET))
    slow = receiver.hold_next(Reply(200, {}))
    ctx = context(engine, env)
    nothing = {"delivered": 0, "failed": 0, "dead": 0, "endpoints_disabled": 0}
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            a = pool.submit(webhooks.drain_webhook_retries, ctx)
            slow.wait_arrived()
            with engine.begin() as c:
                c.execute(
                    sa.text(
                        "UPDATE webhook_deliveries "
                        "SET claimed_until = now() - interval '1s'"
                    )
                )
            receiver.answer(500)
            assert webhooks.drain_webhook_retries(ctx) == {**nothing, "failed": 1}
            slow.release()
            assert a.result(timeout=10) == nothing
        finally:
            slow.release()
    with engine.connect() as c:
        row = c.execute(
            sa.text(
                "SELECT status, attempts, last_status_code, claimed_until "
                "FROM webhook_deliveries"
            )
        ).one()
    assert tuple(row) == ("FAILED", 3, 500, None)
