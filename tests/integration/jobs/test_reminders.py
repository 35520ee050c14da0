"""Reminder and rating-prompt jobs against a real Postgres and a local channel
gateway: booking_reminders, deliver_reminders, rating_prompt."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from agnt_jobs.standins.gateway import FakeChannelGateway
from tests.support import bookings_data as data
from tests.support.bookings_data import Crash, crash_on, run, utcnow

H, M = timedelta(hours=1), timedelta(minutes=1)


def _reminder(engine: Engine, booking_id: int) -> tuple[object, ...] | None:
    found = data.rows(
        engine,
        "SELECT status, skip_reason, due_at FROM reminders WHERE booking_id = :id",
        id=booking_id,
    )
    return found[0] if found else None


# --- booking_reminders ----------------------------------------------------------------


def test_reminders_for_confirmed_bookings_in_the_next_day(engine: Engine) -> None:
    now, place, guest = utcnow(), data.venue(engine), data.user(engine)

    def confirmed(start: timedelta, status: str = "CONFIRMED") -> int:
        return data.booking(engine, guest, place, status, now + start)

    in_5h = confirmed(5 * H)
    in_1h = confirmed(H)
    edge = confirmed(24 * H)
    beyond = confirmed(24 * H + M)
    started = confirmed(-M)
    waiting = confirmed(5 * H, "PENDING_VENUE")
    cancelled = confirmed(5 * H, "CANCELLED")
    reminded = confirmed(3 * H)
    data.insert(
        engine, "reminders", booking_id=reminded, due_at=now - H, status="SKIPPED"
    )

    assert run("booking_reminders", engine, now=now) == {"reminders_created": 3}
    assert _reminder(engine, in_5h) == ("PENDING", None, now + 3 * H)
    # Lead time already past: due now, never in the past.
    assert _reminder(engine, in_1h) == ("PENDING", None, now)
    assert _reminder(engine, edge) == ("PENDING", None, now + 22 * H)
    for b in (beyond, started, waiting, cancelled):
        assert _reminder(engine, b) is None
    assert _reminder(engine, reminded)[0] == "SKIPPED"
    assert run("booking_reminders", engine, now=now) == {"reminders_created": 0}


# --- deliver_reminders ----------------------------------------------------------------


def _due_reminder(
    engine: Engine,
    now: datetime,
    *,
    status: str = "CONFIRMED",
    start: timedelta = H,
    due: timedelta = -M,
    user: int | str | None = "new",
) -> int:
    guest = data.user(engine) if user == "new" else user
    b = data.booking(engine, guest, data.venue(engine), status, now + start)
    data.insert(engine, "reminders", booking_id=b, due_at=now + due)
    return b


def test_deliver_sends_due_reminders_and_skips_moot_ones(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    now = utcnow()
    due = _due_reminder(engine, now)
    not_due = _due_reminder(engine, now, due=M)
    cancelled = _due_reminder(engine, now, status="CANCELLED")
    started = _due_reminder(engine, now, start=-M)
    opted_out = _due_reminder(
        engine, now, user=data.user(engine, notifications_opt_in=False)
    )
    purged = _due_reminder(engine, now, user=None)

    result = run("deliver_reminders", engine, now=now)

    assert (result["reminders_sent"], result["reminders_skipped"]) == (1, 4)
    assert result["sent"] == 1
    assert _reminder(engine, due)[:2] == ("SENT", None)
    assert _reminder(engine, not_due)[:2] == ("PENDING", None)
    assert _reminder(engine, cancelled)[:2] == ("SKIPPED", "cancelled")
    assert _reminder(engine, started)[:2] == ("SKIPPED", "started")
    assert _reminder(engine, opted_out)[:2] == ("SKIPPED", "unreachable")
    assert _reminder(engine, purged)[:2] == ("SKIPPED", "unreachable")
    assert list(gateway.delivered) == [f"reminder:{due}"]
    assert "Reminder: your booking at" in gateway.delivered[f"reminder:{due}"]["text"]
    again = run("deliver_reminders", engine, now=now)
    assert (again["reminders_sent"], again["sent"]) == (0, 0)
    assert len(gateway.received) == 1


def test_deliver_crash_before_delivery_and_gateway_outage(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    now = utcnow()
    ids = [_due_reminder(engine, now) for _ in range(4)]
    with crash_on(engine, data.DELIVERY), pytest.raises(Crash):
        run("deliver_reminders", engine, now=now)
    assert gateway.received == []
    gateway.fail_next(1)
    result = run("deliver_reminders", engine, now=now)
    assert (result["reminders_sent"], result["sent"], result["failed"]) == (0, 3, 1)
    data.make_sends_due(engine)
    assert run("retry_failed_sends", engine)["sent"] == 1
    assert sorted(gateway.delivered) == sorted(f"reminder:{b}" for b in ids)


# --- rating_prompt --------------------------------------------------------------------


def _completed(
    engine: Engine,
    now: datetime,
    ended: timedelta,
    status: str = "COMPLETED",
    **user: object,
) -> int:
    return data.booking(
        engine,
        data.user(engine, **user),
        data.venue(engine),
        status,
        now - ended - H,
        minutes=60,
    )


def test_rating_prompt_asks_once_two_to_48_hours_after_the_visit(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    now = utcnow()
    three_hours = _completed(engine, now, 3 * H)
    two_hours = _completed(engine, now, 2 * H)
    almost_two_days = _completed(engine, now, 47 * H)
    too_soon = _completed(engine, now, 2 * H - M)
    _completed(engine, now, 48 * H)  # too late
    _completed(engine, now, 3 * H, status="CONFIRMED")
    _completed(engine, now, 3 * H, notifications_opt_in=False)
    rated = _completed(engine, now, 3 * H)
    guest = data.scalar(engine, "SELECT user_id FROM bookings WHERE id = :id", id=rated)
    place = data.scalar(
        engine, "SELECT venue_id FROM bookings WHERE id = :id", id=rated
    )
    data.insert(
        engine, "ratings", booking_id=rated, user_id=guest, venue_id=place, score=5
    )

    result = run("rating_prompt", engine, now=now)

    assert (result["prompts_queued"], result["sent"]) == (3, 3)
    assert sorted(gateway.delivered) == sorted(
        f"rating_prompt:{b}" for b in (three_hours, two_hours, almost_two_days)
    )
    assert data.scalar(engine, "SELECT count(*) FROM rating_prompts") == 3
    again = run("rating_prompt", engine, now=now)
    assert (again["prompts_queued"], again["sent"]) == (0, 0)
    # An hour on, the window has moved over the one that was too soon.
    later = run("rating_prompt", engine, now=now + H)
    assert (later["prompts_queued"], later["sent"]) == (1, 1)
    assert f"rating_prompt:{too_soon}" in gateway.delivered
    assert len(gateway.received) == 4
