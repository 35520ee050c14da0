"""The send queue against a real Postgres and a local channel gateway: each message
reaches the gateway once, failures are retried with backoff, and the ones that cannot
be delivered end DEAD with one dead letter."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs.clients.channel import ChannelGateway
from agnt_jobs.delivery import send_queue
from agnt_jobs.settings import Settings, get_settings
from tests.support.http_peers import FakeChannelGateway


def _messages(count: int, prefix: str = "m") -> list[send_queue.Message]:
    return [
        send_queue.Message(
            idempotency_key=f"{prefix}:{i}",
            kind="test",
            channel="whatsapp",
            recipient=f"+62800{i:04d}",
            body=f"hello {i}",
        )
        for i in range(count)
    ]


def _enqueue(engine: Engine, messages: list[send_queue.Message]) -> int:
    with engine.begin() as connection:
        return send_queue.enqueue(connection, messages)


def _deliver(engine: Engine) -> dict[str, int]:
    settings = get_settings()
    with ChannelGateway.from_settings(settings) as client:
        return send_queue.deliver_due(engine, settings, client)


def _statuses(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT status, count(*) FROM send_queue GROUP BY status")
        )
        return {status: count for status, count in rows}


def _make_due(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE send_queue SET next_attempt_at = now()"))


def test_enqueue_is_idempotent(engine: Engine) -> None:
    assert _enqueue(engine, _messages(3)) == 3
    assert _enqueue(engine, _messages(3)) == 0
    assert _statuses(engine) == {"PENDING": 3}


def test_delivers_each_message_once(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    _enqueue(engine, _messages(20))
    assert _deliver(engine) == {"sent": 20, "failed": 0, "dead": 0}
    assert _deliver(engine) == {"sent": 0, "failed": 0, "dead": 0}
    assert len(gateway.received) == 20
    assert len(gateway.delivered) == 20
    assert _statuses(engine) == {"SENT": 20}


def test_gateway_outage_is_retried_after_backoff(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    _enqueue(engine, _messages(1))
    gateway.fail_next(1, status=503)
    assert _deliver(engine) == {"sent": 0, "failed": 1, "dead": 0}
    with engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT attempts, next_attempt_at - now() AS wait, last_error "
                "FROM send_queue"
            )
        ).one()
    assert row.attempts == 1
    assert row.wait.total_seconds() > 50  # backoff base 60 s
    assert "HTTP 503" in row.last_error
    # Not due yet: nothing happens.
    assert _deliver(engine) == {"sent": 0, "failed": 0, "dead": 0}
    _make_due(engine)
    assert _deliver(engine) == {"sent": 1, "failed": 0, "dead": 0}
    assert len(gateway.delivered) == 1


def test_refused_message_is_dead_lettered_once(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    messages = _messages(2)
    gateway.refuse(messages[0].recipient)
    _enqueue(engine, messages)
    assert _deliver(engine) == {"sent": 1, "failed": 0, "dead": 1}
    _make_due(engine)
    assert _deliver(engine) == {"sent": 0, "failed": 0, "dead": 0}
    with engine.connect() as connection:
        letters = connection.execute(
            sa.text("SELECT source, error_class, attempts FROM dead_letters")
        ).all()
    assert letters == [("send_queue", "permanent", 1)]


def test_last_attempt_ends_dead(
    engine: Engine, gateway: FakeChannelGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGNT_MAX_SEND_ATTEMPTS", "3")
    get_settings.cache_clear()
    _enqueue(engine, _messages(1))
    gateway.fail_next(10, status=502)
    outcomes = []
    for _ in range(4):
        outcomes.append(_deliver(engine))
        _make_due(engine)
    assert [o["failed"] for o in outcomes] == [1, 1, 0, 0]
    assert [o["dead"] for o in outcomes] == [0, 0, 1, 0]
    with engine.connect() as connection:
        letter = connection.execute(
            sa.text("SELECT error_class, attempts FROM dead_letters")
        ).one()
    assert tuple(letter) == ("exhausted", 3)
    assert _statuses(engine) == {"DEAD": 1}


def test_crashed_sender_is_resent_once_after_its_lease(
    engine: Engine, gateway: FakeChannelGateway, env: Settings
) -> None:
    """A sender claimed a message, the gateway accepted it, and the sender died
    before recording SENT. After the lease, the message is sent again with the same
    key; the gateway deduplicates, and the row ends SENT."""
    _enqueue(engine, _messages(1))
    settings = get_settings()
    with ChannelGateway.from_settings(settings) as client:
        rows = send_queue.drain(engine, settings, client, statuses=["PENDING"]).claim(
            10
        )
        client.send(
            rows[0].recipient, rows[0].channel, rows[0].body, rows[0].idempotency_key
        )
    # ...crash. Nothing recorded; the row stays claimed until the lease passes.
    assert _deliver(engine) == {"sent": 0, "failed": 0, "dead": 0}
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE send_queue SET claimed_until = now() - interval '1 s'")
        )
    assert _deliver(engine) == {"sent": 1, "failed": 0, "dead": 0}
    assert len(gateway.received) == 2
    assert len(gateway.delivered) == 1
    assert _statuses(engine) == {"SENT": 1}


def test_two_senders_at_once_send_each_message_once(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    _enqueue(engine, _messages(300))
    results: list[dict[str, int]] = []

    def sender() -> None:
        results.append(_deliver(engine))

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r["sent"] for r in results) == 300
    assert len(gateway.received) == 300
    assert _statuses(engine) == {"SENT": 300}
