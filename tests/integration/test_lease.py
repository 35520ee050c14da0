"""The lease drain against a real Postgres and a local channel gateway, through its
first specialisation, the send queue: a stop between batches leaves exactly the
batches done recorded, and a send whose lease ran out while the gateway was slow
is recorded only by the drain that holds the lease now."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs.clients.channel import ChannelGateway
from agnt_jobs.delivery import send_queue
from agnt_jobs.settings import Settings, get_settings
from tests.support.http_peers import FakeChannelGateway, Reply

# What a sender whose lease ran out reports: it sent the message and recorded
# nothing, since the row is no longer under its lease.
LOST = {"sent": 0, "failed": 0, "dead": 0, "lease_lost": 1}


def _enqueue(engine: Engine, count: int) -> None:
    with engine.begin() as connection:
        send_queue.enqueue(
            connection,
            [
                send_queue.Message(
                    f"lease:{i}", "test", "whatsapp", f"+6281{i:04d}", "hi"
                )
                for i in range(count)
            ],
        )


def _rows(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return connection.execute(
            sa.text(
                "SELECT id, status, attempts, claimed_until, last_error, "
                "gateway_message_id FROM send_queue ORDER BY id"
            )
        ).all()


def _settings(**overrides: Any) -> Settings:
    return get_settings().model_copy(update=overrides)


def _deliver(settings: Settings, engine: Engine) -> dict[str, int]:
    with ChannelGateway.from_settings(settings) as client:
        return send_queue.deliver_due(engine, settings, client)


def _expire_leases(engine: Engine) -> None:
    """The lease runs out: what the clock would do while the gateway is slow."""
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE send_queue SET claimed_until = now() - interval '1 s' "
                "WHERE claimed_until IS NOT NULL"
            )
        )


def test_a_stop_before_any_batch_claims_nothing(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    _enqueue(engine, 3)
    settings = _settings()
    with ChannelGateway.from_settings(settings) as client:
        drained = send_queue.drain(engine, settings, client).run(stop=lambda: True)
    assert (drained.stopped, drained.batches, drained.counts) == (True, 0, {})
    assert gateway.received == []
    assert {(r.status, r.attempts, r.claimed_until) for r in _rows(engine)} == {
        ("PENDING", 0, None)
    }


def test_a_drain_stopped_after_batch_one_recorded_it_and_a_rerun_sends_the_rest_once(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    settings = _settings(send_concurrency=2)  # batches of 16
    _enqueue(engine, 40)
    asked: list[int] = []

    def stop() -> bool:
        asked.append(len(gateway.received))
        return len(asked) > 1  # go on before batch 1, stop before batch 2

    with ChannelGateway.from_settings(settings) as client:
        drained = send_queue.drain(engine, settings, client).run(stop)
    assert (drained.stopped, drained.batches) == (True, 1)
    assert drained.counts == {"sent": 16}
    assert asked == [0, 16]  # asked between batches, not inside one
    rows = _rows(engine)
    assert [r.status for r in rows] == ["SENT"] * 16 + ["PENDING"] * 24
    # Nothing was claimed and left unsent: the rest is untouched, not leased.
    assert {(r.attempts, r.claimed_until) for r in rows[16:]} == {(0, None)}
    assert len(gateway.received) == 16

    assert _deliver(settings, engine) == {"sent": 24, "failed": 0, "dead": 0}
    assert len(gateway.received) == 40  # each message sent once, none again
    assert len(gateway.delivered) == 40
    assert {(r.status, r.attempts) for r in _rows(engine)} == {("SENT", 1)}


def _in_thread(pool: ThreadPoolExecutor, engine: Engine) -> Future[dict[str, int]]:
    return pool.submit(_deliver, _settings(), engine)


@pytest.mark.parametrize(
    ("late", "own", "recorded"),
    [
        # A's send failed late; B's goes through.
        (Reply(503, {"error": "unavailable"}), None, ("SENT", "gw-lease:0")),
        # A's send went through late (its own gateway id); B's fails.
        (
            Reply(201, {"id": "gw-from-the-late-sender"}),
            Reply(503, {}),
            ("FAILED", None),
        ),
    ],
    ids=["late failure", "late success"],
)
def test_a_late_outcome_records_nothing_under_the_new_holders_claim(
    engine: Engine,
    gateway: FakeChannelGateway,
    late: Reply,
    own: Reply | None,
    recorded: tuple[str, str | None],
) -> None:
    """Sender A's lease runs out while the gateway holds its request; sender B
    claims the message and is sending it when A's answer comes back. Whatever it
    says, A records nothing (no status, no gateway id) and leaves B's claim alone;
    the row then records B's own outcome."""
    _enqueue(engine, 1)
    slow = gateway.hold_next(late)
    second = gateway.hold_next(own)
    with ThreadPoolExecutor(max_workers=2) as pool:
        try:
            a = _in_thread(pool, engine)
            slow.wait_arrived()
            _expire_leases(engine)
            b = _in_thread(pool, engine)
            second.wait_arrived()
            (claimed_by_b,) = _rows(engine)
            assert (claimed_by_b.status, claimed_by_b.attempts) == ("PENDING", 2)

            slow.release()
            assert a.result(timeout=10) == LOST
            assert _rows(engine) == [claimed_by_b]  # B's claim, untouched

            second.release()
            b.result(timeout=10)
        finally:
            slow.release()
            second.release()
    (row,) = _rows(engine)
    assert (row.status, row.gateway_message_id) == recorded
    assert (row.attempts, row.claimed_until) == (2, None)
    assert len(gateway.received) == 2


def test_a_late_refusal_does_not_undo_what_the_new_holder_recorded(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    """Sender A's lease runs out while the gateway holds its request; sender B
    claims the message, sends it and records SENT; then A's answer (422, which
    would kill the message) comes back. A records nothing: no DEAD, no dead
    letter."""
    _enqueue(engine, 1)
    slow = gateway.hold_next(Reply(422, {"error": "unknown recipient"}))
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            a = _in_thread(pool, engine)
            slow.wait_arrived()
            _expire_leases(engine)
            assert _deliver(_settings(), engine) == {"sent": 1, "failed": 0, "dead": 0}
            (recorded_by_b,) = _rows(engine)
            slow.release()
            assert a.result(timeout=10) == LOST
        finally:
            slow.release()
    assert _rows(engine) == [recorded_by_b]
    assert (recorded_by_b.status, recorded_by_b.last_error) == ("SENT", None)
    with engine.connect() as connection:
        letters = connection.execute(sa.text("SELECT count(*) FROM dead_letters"))
        assert letters.scalar_one() == 0
