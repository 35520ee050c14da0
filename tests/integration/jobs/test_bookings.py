"""Booking status jobs against a real Postgres and a local channel gateway:
auto_confirm_stale_bookings, mark_completed_bookings, cancel_orphaned_bookings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from agnt_jobs.standins.gateway import FakeChannelGateway
from tests.support import bookings_data as data
from tests.support.bookings_data import Crash, crash_on, run, utcnow

H = timedelta(hours=1)


def _status(engine: Engine, booking_id: int) -> tuple[str, bool, str | None]:
    return data.rows(
        engine,
        "SELECT status, auto_confirmed, cancelled_reason FROM bookings WHERE id = :id",
        id=booking_id,
    )[0]


# --- auto_confirm_stale_bookings ------------------------------------------------------


def test_auto_confirm_confirms_only_stale_requests_the_venue_received(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    now, place = utcnow(), data.venue(engine)
    alice, muted = data.user(engine), data.user(engine, notifications_opt_in=False)

    def pending(
        user: int, changed: timedelta, start: timedelta, env: str | None
    ) -> int:
        b = data.booking(
            engine, user, place, "PENDING_VENUE", now + start, changed_at=now - changed
        )
        if env:
            data.envelope(engine, b, env)
        return b

    dispatched = pending(alice, 3 * H, 24 * H, "DISPATCHED")
    delivered = pending(alice, 2 * H + timedelta(minutes=1), 2 * H, "DELIVERED")
    untold = pending(muted, 3 * H, 24 * H, "DISPATCHED")
    recent = pending(alice, 1 * H, 24 * H, "DISPATCHED")
    slot_passed = pending(alice, 3 * H, -1 * H, "DISPATCHED")
    failed_envelope = pending(alice, 3 * H, 24 * H, "DISPATCH_FAILED")
    no_envelope = pending(alice, 3 * H, 24 * H, None)
    requested = data.booking(
        engine, alice, place, "REQUESTED", now + 24 * H, changed_at=now - 3 * H
    )
    data.envelope(engine, requested, "DISPATCHED")

    result = run("auto_confirm_stale_bookings", engine, now=now)

    assert result["auto_confirmed"] == 3
    assert result["users_told"] == 2
    assert result["sent"] == 2
    for b in (dispatched, delivered, untold):
        assert _status(engine, b) == ("CONFIRMED", True, None)
    for b in (recent, slot_passed, failed_envelope, no_envelope):
        assert _status(engine, b) == ("PENDING_VENUE", False, None)
    assert _status(engine, requested) == ("REQUESTED", False, None)
    assert sorted(gateway.delivered) == sorted(
        f"booking_auto_confirmed:{b}" for b in (dispatched, delivered)
    )
    assert (
        "is confirmed"
        in gateway.delivered[f"booking_auto_confirmed:{delivered}"]["text"]
    )

    again = run("auto_confirm_stale_bookings", engine, now=now)
    assert again["auto_confirmed"] == 0 and again["sent"] == 0
    assert len(gateway.received) == 2


# --- mark_completed_bookings ----------------------------------------------------------


def test_mark_completed_completes_only_confirmed_bookings_that_ended(
    engine: Engine,
) -> None:
    now, place, guest = utcnow(), data.venue(engine), data.user(engine)
    ended = data.booking(engine, guest, place, "CONFIRMED", now - 3 * H, minutes=60)
    ends_now = data.booking(engine, guest, place, "CONFIRMED", now - H, minutes=60)
    under_way = data.booking(engine, guest, place, "CONFIRMED", now - H, minutes=61)
    later = data.booking(engine, guest, place, "CONFIRMED", now + H)
    waiting = data.booking(engine, guest, place, "PENDING_VENUE", now - 3 * H)
    cancelled = data.booking(engine, guest, place, "CANCELLED", now - 3 * H)

    assert run("mark_completed_bookings", engine, now=now) == {"completed": 2}
    for b in (ended, ends_now):
        assert _status(engine, b)[0] == "COMPLETED"
    assert _status(engine, under_way)[0] == "CONFIRMED"
    assert _status(engine, later)[0] == "CONFIRMED"
    assert _status(engine, waiting)[0] == "PENDING_VENUE"
    assert _status(engine, cancelled)[0] == "CANCELLED"
    assert run("mark_completed_bookings", engine, now=now) == {"completed": 0}


# --- cancel_orphaned_bookings ---------------------------------------------------------


def test_cancel_orphaned_cancels_waiting_bookings_that_cannot_be_answered(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    now, place, guest = utcnow(), data.venue(engine), data.user(engine)

    def waiting(status: str, changed: timedelta, start: timedelta = 24 * H) -> int:
        return data.booking(
            engine, guest, place, status, now + start, changed_at=now - changed
        )

    expired = waiting("PENDING_VENUE", 10 * timedelta(minutes=1))
    data.envelope(engine, expired, "EXPIRED")
    gone = waiting("REQUESTED", 61 * timedelta(minutes=1))
    slot_passed = waiting("PENDING_VENUE", 5 * H, start=-timedelta(minutes=1))
    data.envelope(engine, slot_passed, "DISPATCHED")
    # Left alone: recovery still has time, the venue has it, already decided.
    young = waiting("REQUESTED", 30 * timedelta(minutes=1))
    live = waiting("PENDING_VENUE", 5 * H)
    data.envelope(engine, live, "DISPATCHED")
    retrying = waiting("REQUESTED", 5 * H)
    data.envelope(engine, retrying, "DISPATCH_FAILED")
    confirmed = waiting("CONFIRMED", 5 * H)
    data.envelope(engine, confirmed, "EXPIRED")

    result = run("cancel_orphaned_bookings", engine, now=now)

    assert result["cancelled"] == 3
    assert (result["envelope_expired"], result["no_envelope"]) == (1, 1)
    assert (result["slot_passed"], result["sent"]) == (1, 3)
    assert _status(engine, expired) == ("CANCELLED", False, "envelope_expired")
    assert _status(engine, gone) == ("CANCELLED", False, "no_envelope")
    assert _status(engine, slot_passed) == ("CANCELLED", False, "slot_passed")
    for b, status in ((young, "REQUESTED"), (live, "PENDING_VENUE")):
        assert _status(engine, b)[0] == status
    assert _status(engine, retrying)[0] == "REQUESTED"
    assert _status(engine, confirmed)[0] == "CONFIRMED"
    assert sorted(gateway.delivered) == sorted(
        f"booking_cancelled:{b}" for b in (expired, gone, slot_passed)
    )

    again = run("cancel_orphaned_bookings", engine, now=now)
    assert again["cancelled"] == 0 and again["sent"] == 0
    assert len(gateway.received) == 3


def _orphans(engine: Engine, count: int) -> list[int]:
    now, place, guest = utcnow(), data.venue(engine), data.user(engine)
    ids = []
    for _ in range(count):
        b = data.booking(
            engine, guest, place, "PENDING_VENUE", now + 24 * H, changed_at=now - H
        )
        data.envelope(engine, b, "EXPIRED")
        ids.append(b)
    return ids


def test_cancel_orphaned_crash_before_delivery_then_rerun(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    ids = _orphans(engine, 4)
    with crash_on(engine, data.DELIVERY), pytest.raises(Crash):
        run("cancel_orphaned_bookings", engine)
    assert gateway.received == []
    result = run("cancel_orphaned_bookings", engine)
    assert result["cancelled"] == 0 and result["sent"] == 4
    assert sorted(gateway.delivered) == sorted(f"booking_cancelled:{b}" for b in ids)
