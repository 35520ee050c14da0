"""Messaging jobs against a real Postgres and a local channel gateway:
retry_failed_sends, re_engagement, venue_daily_summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from agnt_jobs.delivery import send_queue
from tests.support import bookings_data as data
from tests.support.bookings_data import run, utcnow
from tests.support.http_peers import FakeChannelGateway

H, D = timedelta(hours=1), timedelta(days=1)


def _queue(engine: Engine, key: str, **state: object) -> int:
    with engine.begin() as connection:
        send_queue.enqueue(
            connection,
            [send_queue.Message(key, "test", "whatsapp", f"+62{key}", f"hello {key}")],
        )
    if state:
        sets = ", ".join(f"{column} = :{column}" for column in state)
        data.execute(
            engine,
            f"UPDATE send_queue SET {sets} WHERE idempotency_key = :key",
            key=key,
            **state,
        )
    return data.scalar(
        engine, "SELECT id FROM send_queue WHERE idempotency_key = :k", k=key
    )


def _send_status(engine: Engine, key: str) -> str:
    return data.scalar(
        engine, "SELECT status FROM send_queue WHERE idempotency_key = :k", k=key
    )


# --- retry_failed_sends ---------------------------------------------------------------


def test_retry_sends_due_failures_and_stranded_pending_only(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    now = utcnow()
    _queue(engine, "failed-due", status="FAILED", attempts=1, next_attempt_at=now - H)
    _queue(engine, "failed-later", status="FAILED", attempts=1, next_attempt_at=now + H)
    _queue(engine, "stranded", created_at=now - 10 * timedelta(minutes=1))
    _queue(engine, "fresh")  # its job is delivering it right now
    _queue(engine, "sent", status="SENT")
    _queue(engine, "dead", status="DEAD", next_attempt_at=now - H)

    result = run("retry_failed_sends", engine, now=now)

    assert result == {"sent": 2, "failed": 0, "dead": 0, "stranded_pending": 1}
    assert sorted(gateway.delivered) == ["failed-due", "stranded"]
    assert _send_status(engine, "failed-later") == "FAILED"
    assert _send_status(engine, "fresh") == "PENDING"
    assert _send_status(engine, "dead") == "DEAD"
    again = run("retry_failed_sends", engine, now=now)
    assert again["sent"] == 0
    assert len(gateway.received) == 2


def test_retry_backs_off_then_dead_letters_the_last_attempt(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    message = _queue(
        engine, "doomed", status="FAILED", attempts=1, next_attempt_at=utcnow() - H
    )
    gateway.fail_next(10, status=503)
    outcomes = []
    for _ in range(3):
        outcomes.append(run("retry_failed_sends", engine, max_send_attempts=3))
        data.make_sends_due(engine)
    assert [(o["failed"], o["dead"]) for o in outcomes] == [(1, 0), (0, 1), (0, 0)]
    assert _send_status(engine, "doomed") == "DEAD"
    assert data.rows(
        engine, "SELECT source, source_id, error_class, attempts FROM dead_letters"
    ) == [("send_queue", str(message), "exhausted", 3)]


# --- re_engagement --------------------------------------------------------------------

# Sunday 17:00 UTC is Monday 01:00 WITA: the ISO week is WITA's, 2026-W49.
MONDAY_WITA = datetime(2026, 11, 29, 17, 0, tzinfo=UTC)


def _lapsed(engine: Engine, now: datetime, **values: object) -> int:
    return data.user(engine, last_active_at=now - 15 * D, **values)


def test_re_engagement_nudges_lapsed_opted_in_users_once(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    now = MONDAY_WITA
    lapsed = _lapsed(engine, now)
    nudged_long_ago = _lapsed(engine, now)
    data.insert(
        engine,
        "user_nudges",
        user_id=nudged_long_ago,
        iso_week="2026-W44",
        nudged_at=now - 29 * D,
    )
    recently_nudged = _lapsed(engine, now)
    data.insert(
        engine,
        "user_nudges",
        user_id=recently_nudged,
        iso_week="2026-W45",
        nudged_at=now - 27 * D,
    )
    data.user(engine, last_active_at=now - 13 * D)  # still active
    data.user(engine, last_active_at=None)  # never active
    _lapsed(engine, now, marketing_opt_in=False)
    _lapsed(engine, now, notifications_opt_in=False)
    _lapsed(engine, now, channel_address=None)
    _lapsed(engine, now, deleted_at=now - D)

    result = run("re_engagement", engine, now=now, tick=now)

    assert result["nudges_queued"] == 2 and result["sent"] == 2
    assert result["iso_week"] == "2026-W49"
    assert sorted(gateway.delivered) == [
        f"nudge:{lapsed}:2026-W49",
        f"nudge:{nudged_long_ago}:2026-W49",
    ]
    # A second run for the same tick: nothing more.
    assert run("re_engagement", engine, now=now, tick=now)["nudges_queued"] == 0
    # Even with a short cooldown, the week allows one nudge per user: two days on,
    # only the two not yet nudged this week are (one was 27 days ago, one has
    # become idle).
    later = now + 2 * D
    result = run(
        "re_engagement", engine, now=later, tick=later, re_engagement_cooldown_days=1
    )
    assert (result["nudges_queued"], result["iso_week"]) == (2, "2026-W49")
    # Four weeks after the first run, in a new ISO week: the first two again.
    later = now + 28 * D
    result = run("re_engagement", engine, now=later, tick=later)
    assert (result["nudges_queued"], result["iso_week"]) == (2, "2026-W53")
    assert len(gateway.received) == 6
    assert data.rows(
        engine, "SELECT count(*), count(DISTINCT user_id) FROM user_nudges"
    ) == [(8, 4)]


# --- venue_daily_summary --------------------------------------------------------------

# 22:00 WITA on 2026-11-25; that WITA day is [2026-11-24 16:00Z, 2026-11-25 16:00Z).
EVENING = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
DAY_START = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
DAY_END = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)


def _owned_venue(engine: Engine, **owner: object) -> int:
    return data.venue(engine, owner_user_id=data.user(engine, **owner))


def test_summary_counts_the_wita_day_and_goes_to_each_owner_once(
    engine: Engine, gateway: FakeChannelGateway
) -> None:
    place, quiet = _owned_venue(engine), _owned_venue(engine)
    guest = data.user(engine)
    minute = timedelta(minutes=1)
    data.booking(engine, guest, place, "CONFIRMED", DAY_START, party_size=4)
    data.booking(engine, guest, place, "COMPLETED", DAY_END - minute, minutes=30)
    rated = data.booking(engine, guest, place, "CANCELLED", DAY_START + H, party_size=3)
    data.booking(engine, guest, place, "CONFIRMED", DAY_START - minute)  # yesterday
    data.booking(engine, guest, place, "CONFIRMED", DAY_END)  # tomorrow
    old = data.booking(engine, guest, place, "COMPLETED", DAY_START - 2 * D)
    older = data.booking(engine, guest, place, "COMPLETED", DAY_START - 3 * D)
    for b, score, at in ((rated, 4, DAY_START), (old, 5, DAY_END - minute)):
        data.insert(
            engine,
            "ratings",
            booking_id=b,
            user_id=guest,
            venue_id=place,
            score=score,
            created_at=at,
        )
    data.insert(
        engine,
        "ratings",
        booking_id=older,
        user_id=guest,
        venue_id=place,
        score=1,
        created_at=DAY_START - minute,
    )
    # Not summarised: inactive, unowned, owner who cannot be messaged.
    data.venue(engine, owner_user_id=data.user(engine), is_active=False)
    data.venue(engine)
    _owned_venue(engine, deleted_at=EVENING)

    result = run("venue_daily_summary", engine, tick=EVENING)

    assert result["summaries_queued"] == 2 and result["date"] == "2026-11-25"
    name = data.scalar(engine, "SELECT name FROM venues WHERE id = :id", id=place)
    assert gateway.delivered[f"summary:{place}:2026-11-25"]["text"] == (
        f"{name}, 2026-11-25: 3 bookings (CANCELLED 1, COMPLETED 1, CONFIRMED 1), "
        "6 covers, 2 new ratings (average 4.5)."
    )
    assert (
        "0 bookings (none), 0 covers, 0 new ratings."
        in (gateway.delivered[f"summary:{quiet}:2026-11-25"]["text"])
    )
    # A late or repeated run for the same tick sends nothing more.
    late = run("venue_daily_summary", engine, tick=EVENING, now=EVENING + 3 * H)
    assert late["summaries_queued"] == 0 and len(gateway.received) == 2
    # The next evening is a new date.
    assert run("venue_daily_summary", engine, tick=EVENING + D)["sent"] == 2
