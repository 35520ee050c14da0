"""The contracts every job that walks rows shares, checked for each job id:

- **two copies at once** (two workers given the same tick, an operator's "run now"
  beside the scheduled run) do each thing once between them;
- **a crash half-way** (the process dies right after the first chunk committed) keeps
  what it committed, and a rerun does exactly the rest;
- **rows locked elsewhere** (a slow copy of the job, the platform editing a row) are
  skipped, not waited for; a run after the lock is released takes them;
- **a gateway outage** leaves a sending job's failed messages to the send queue's
  retry, which delivers each once; the job itself never sends one twice.

Each job is a ``Case``: how to make ``n`` things due for it, which of them are still
due, and the count its result gives. A job that tells people (the send queue's
messages) must also have delivered each message once: the local gateway's log says
so. What is particular to one job (which rows are due, a Stripe call cut in two, a
gateway outage) is tested in that job's own module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from agnt_jobs.delivery import send_queue
from agnt_jobs.standins.gateway import FakeChannelGateway
from tests.support import bookings_data as data
from tests.support.bookings_data import Crash, crash_after_commits, run, run_at_once
from tests.support.jobs import assert_skips_rows_locked_elsewhere

H, M, D = timedelta(hours=1), timedelta(minutes=1), timedelta(days=1)

# A Tuesday evening (04:00 WITA on Wednesday) for the retention and lifecycle jobs.
RETENTION_NOW = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
# Sunday 17:00 UTC is Monday 01:00 WITA, re_engagement's week 2026-W49.
MONDAY_WITA = datetime(2026, 11, 29, 17, 0, tzinfo=UTC)
# 09:00 WITA on 2026-11-25: the spend digest of 2026-11-24 (WITA), a day that began
# at 2026-11-23 16:00 UTC.
DIGEST_MORNING = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
SPEND_DAY = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
# 21:00 WITA on 2026-11-25: the nutrition summary of that WITA day.
NUTRITION_EVENING = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
# 22:00 WITA on 2026-11-25: the venues' daily summary.
SUMMARY_EVENING = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)

Seed = Callable[[Engine, int, datetime], None]


@dataclass(frozen=True)
class Case:
    """One job under the shared contracts."""

    job: str
    seed: Seed
    """Makes ``n`` things due for the job at ``now`` (and some that are not)."""
    due: str
    """SQL: the ids of the things still due, ``array_agg(id ORDER BY id)``."""
    counted: str
    """The key of the job's result that counts the things it did."""
    held: str | None = None
    """SQL: the ids of some due rows, which the test holds ``FOR UPDATE``; None
    where the job locks no rows (it records what it did under a unique key)."""
    now: datetime | None = None
    """The run's clock; None for the wall clock."""
    tick: datetime | None = None
    """The tick the run is for; None for ``now``."""
    small_chunks: dict[str, Any] = field(default_factory=lambda: {"job_chunk_size": 3})
    """Settings that make a run take its things in several chunks."""
    sends: bool = False
    """Whether each thing done is a message through the channel gateway."""
    first_chunk_commits: int = 1
    """The commits of a run's first chunk: a crash comes right after them."""

    def __str__(self) -> str:
        return self.job

    def run(self, engine: Engine, now: datetime, **settings: Any) -> Any:
        return run(self.job, engine, now=now, tick=self.tick or now, **settings)


def _still_due(engine: Engine, case: Case) -> list[int]:
    return data.scalar(engine, case.due) or []


# --- seeds ------------------------------------------------------------------------
# The seeds of range changes (the retention deletes, abandoning sessions, expiring
# codes) space their rows a second apart: a range chunk ends at a time, never
# inside one, and a crash after its first chunk needs more than one instant to
# leave some rows.


def _old_memories(engine: Engine, n: int, now: datetime) -> None:
    owner = data.user(engine)
    data.execute(
        engine,
        "INSERT INTO memories (user_id, content, created_at) "
        "SELECT :u, 'm' || i, :at + i * interval '1 second' "
        "FROM generate_series(1, :n) AS i",
        u=owner,
        at=now - 200 * D,
        n=n,
    )
    data.insert(
        engine,
        "memories",
        user_id=owner,
        content="kept",
        created_at=now - 200 * D,
        pinned=True,
    )


def _resolved_dead_letters(engine: Engine, n: int, now: datetime) -> None:
    data.execute(
        engine,
        "INSERT INTO dead_letters (source, source_id, error_class, created_at, "
        "resolved_at) SELECT 'send_queue', 'm' || i, 'exhausted', :at, "
        ":resolved + i * interval '1 second' FROM generate_series(1, :n) AS i",
        at=now - 30 * D,
        resolved=now - 9 * D,
        n=n,
    )
    data.insert(  # unresolved: kept however old
        engine,
        "dead_letters",
        source="webhook",
        source_id="w",
        error_class="gone",
        created_at=now - 300 * D,
    )


def _old_error_logs(engine: Engine, n: int, now: datetime) -> None:
    data.execute(
        engine,
        "INSERT INTO error_log (source, message, created_at) "
        "SELECT 'test', 'boom ' || i, :at + i * interval '1 second' "
        "FROM generate_series(1, :n) AS i",
        at=now - 40 * D,
        n=n,
    )


def _deleted_users(engine: Engine, n: int, now: datetime) -> None:
    data.execute(
        engine,
        "INSERT INTO users (display_name, channel, channel_address, deleted_at) "
        "SELECT 'user ' || i, 'whatsapp', '+62' || i, :gone "
        "FROM generate_series(1, :n) AS i",
        gone=now - 60 * D,
        n=n,
    )
    data.user(engine)


def _sessions(last_activity: timedelta, expires: timedelta) -> Seed:
    def seed(engine: Engine, n: int, now: datetime) -> None:
        owner = data.user(engine)
        data.execute(
            engine,
            "INSERT INTO b2b_onboarding_sessions (user_id, last_activity_at, "
            "expires_at) SELECT :u, :idle + i * interval '1 second', "
            ":exp + i * interval '1 second' "
            "FROM generate_series(1, :n) AS i",
            u=owner,
            idle=now + last_activity,
            exp=now + expires,
            n=n,
        )
        data.insert(
            engine,
            "b2b_onboarding_sessions",
            user_id=owner,
            status="COMPLETED",
            last_activity_at=now - 90 * D,
            expires_at=now - 90 * D,
        )

    return seed


def _stale_referrals(engine: Engine, n: int, now: datetime) -> None:
    data.execute(
        engine,
        "INSERT INTO referral_codes (code, referrer_user_id, expires_at) "
        "SELECT 'CODE' || i, :u, :exp + i * interval '1 second' "
        "FROM generate_series(1, :n) AS i",
        u=data.user(engine),
        exp=now - 2 * D,
        n=n,
    )


def _unclaimed_owned_venues(engine: Engine, n: int, now: datetime) -> None:
    data.execute(
        engine,
        "INSERT INTO venues (name, owner_user_id) "
        "SELECT 'v' || i, :o FROM generate_series(1, :n) AS i",
        o=data.user(engine),
        n=n,
    )


def _bookings(status: str, start: timedelta, minutes: int = 60) -> Seed:
    def seed(engine: Engine, n: int, now: datetime) -> None:
        place = data.venue(engine)
        for i in range(n):
            data.booking(
                engine, None, place, status, now + start + i * M, minutes=minutes
            )

    return seed


def _expired_envelopes(engine: Engine, n: int, now: datetime) -> None:
    place = data.venue(engine)
    for _ in range(n):
        b = data.booking(engine, None, place, "REQUESTED", now + 24 * H)
        data.envelope(engine, b, "PENDING", expires_at=now - M)


def _orphaned_responses(engine: Engine, n: int, now: datetime) -> None:
    place = data.venue(engine)
    for i in range(n):
        data.response(engine, None, place, "ACCEPT", received_at=now - H - i * M)


def _unanswered_bookings(engine: Engine, n: int, now: datetime) -> None:
    place = data.venue(engine)
    for _ in range(n):
        b = data.booking(
            engine,
            data.user(engine),
            place,
            "PENDING_VENUE",
            now + 24 * H,
            changed_at=now - 3 * H,
        )
        data.envelope(engine, b, "DISPATCHED")


def _orphaned_bookings(engine: Engine, n: int, now: datetime) -> None:
    place, guest = data.venue(engine), data.user(engine)
    for _ in range(n):
        b = data.booking(
            engine, guest, place, "PENDING_VENUE", now + 24 * H, changed_at=now - H
        )
        data.envelope(engine, b, "EXPIRED")


def _visits_ended(engine: Engine, n: int, now: datetime) -> None:
    for i in range(n):
        data.booking(
            engine,
            data.user(engine),
            data.venue(engine),
            "COMPLETED",
            now - 4 * H - i * M,
            minutes=60,
        )


def _lapsed_users(engine: Engine, n: int, now: datetime) -> None:
    for _ in range(n):
        data.user(engine, last_active_at=now - 15 * D)


def _owned_venues(engine: Engine, n: int, now: datetime) -> None:
    for _ in range(n):
        data.venue(engine, owner_user_id=data.user(engine))


def _spenders(engine: Engine, n: int, now: datetime) -> None:
    for _ in range(n):
        data.insert(
            engine,
            "user_spend_entries",
            user_id=data.user(engine),
            amount=1000,
            currency="IDR",
            spent_at=SPEND_DAY + D / 2,
        )


def _eaters(engine: Engine, n: int, now: datetime) -> None:
    for _ in range(n):
        data.insert(
            engine,
            "nutrition_entries",
            user_id=data.user(engine),
            calories=500,
            eaten_at=NUTRITION_EVENING - 2 * H,
            description="nasi goreng",
        )


def _due_reminders(engine: Engine, n: int, now: datetime) -> None:
    place = data.venue(engine)
    for _ in range(n):
        b = data.booking(engine, data.user(engine), place, "CONFIRMED", now + H)
        data.insert(engine, "reminders", booking_id=b, due_at=now - M)


def _failed_sends(engine: Engine, n: int, now: datetime) -> None:
    with engine.begin() as connection:
        send_queue.enqueue(
            connection,
            [
                send_queue.Message(f"m{i}", "test", "whatsapp", f"+62{i}", f"hello {i}")
                for i in range(n)
            ],
        )
    data.execute(
        engine,
        "UPDATE send_queue SET status = 'FAILED', attempts = 1, next_attempt_at = :now",
        now=now,
    )


def _without_message(table: str, key: str) -> str:
    """The ids of ``table`` no message of ``key`` (SQL over the row ``t``) is queued
    for yet."""
    return (
        f"SELECT array_agg(t.id ORDER BY t.id) FROM {table} AS t WHERE NOT EXISTS "
        f"(SELECT FROM send_queue AS s WHERE s.idempotency_key = {key})"
    )


CASES = [
    Case(
        "memory_eviction",
        _old_memories,
        "SELECT array_agg(id ORDER BY id) FROM memories WHERE NOT pinned",
        "deleted",
        held="SELECT id FROM memories WHERE NOT pinned AND id % 6 = 0",
        now=RETENTION_NOW,
    ),
    Case(
        "dlq_cleanup",
        _resolved_dead_letters,
        "SELECT array_agg(id ORDER BY id) FROM dead_letters "
        "WHERE resolved_at IS NOT NULL",
        "deleted",
        held="SELECT id FROM dead_letters WHERE resolved_at IS NOT NULL AND id % 5 = 2",
        now=RETENTION_NOW,
    ),
    Case(
        "prune_error_logs",
        _old_error_logs,
        "SELECT array_agg(id ORDER BY id) FROM error_log",
        "deleted",
        held="SELECT id FROM error_log WHERE id % 4 = 1",
        now=RETENTION_NOW,
    ),
    Case(
        "purge_deleted_users",
        _deleted_users,
        "SELECT array_agg(id ORDER BY id) FROM users WHERE deleted_at IS NOT NULL",
        "users_purged",
        held="SELECT id FROM users WHERE deleted_at IS NOT NULL AND id % 5 = 1",
        now=RETENTION_NOW,
    ),
    Case(
        "b2b_session_cleanup",
        _sessions(last_activity=-30 * D, expires=-8 * D),
        "SELECT array_agg(id ORDER BY id) FROM b2b_onboarding_sessions "
        "WHERE status <> 'COMPLETED'",
        "sessions_deleted",
        held="SELECT id FROM b2b_onboarding_sessions "
        "WHERE status <> 'COMPLETED' AND id % 6 = 0",
        now=RETENTION_NOW,
    ),
    Case(
        "mark_abandoned_b2b_sessions",
        _sessions(last_activity=-3 * D, expires=D),
        "SELECT array_agg(id ORDER BY id) FROM b2b_onboarding_sessions "
        "WHERE status = 'ACTIVE'",
        "sessions_abandoned",
        held="SELECT id FROM b2b_onboarding_sessions "
        "WHERE status = 'ACTIVE' AND id % 6 = 0",
        now=RETENTION_NOW,
    ),
    Case(
        "expire_stale_referrals",
        _stale_referrals,
        "SELECT array_agg(id ORDER BY id) FROM referral_codes WHERE status = 'ACTIVE'",
        "referrals_expired",
        held="SELECT id FROM referral_codes WHERE id % 7 = 3",
        now=RETENTION_NOW,
    ),
    Case(
        "reconcile_venue_compound_state",
        _unclaimed_owned_venues,
        "SELECT array_agg(id ORDER BY id) FROM venues WHERE NOT is_claimed",
        "claimed_fixed",
        held="SELECT id FROM venues WHERE id % 4 = 1",
        now=RETENTION_NOW,
    ),
    Case(
        "mark_completed_bookings",
        _bookings("CONFIRMED", start=-3 * H),
        "SELECT array_agg(id ORDER BY id) FROM bookings WHERE status = 'CONFIRMED'",
        "completed",
        held="SELECT id FROM bookings WHERE id % 4 = 1",
    ),
    Case(
        "booking_reminders",
        _bookings("CONFIRMED", start=H),
        "SELECT array_agg(b.id ORDER BY b.id) FROM bookings AS b WHERE NOT EXISTS "
        "(SELECT FROM reminders AS r WHERE r.booking_id = b.id)",
        "reminders_created",
    ),
    Case(
        "reap_stale_envelopes",
        _expired_envelopes,
        "SELECT array_agg(id ORDER BY id) FROM a2a_envelopes WHERE status = 'PENDING'",
        "expired",
        held="SELECT id FROM a2a_envelopes WHERE id % 4 = 1",
    ),
    Case(
        "sweep_orphaned_responses",
        _orphaned_responses,
        "SELECT array_agg(id ORDER BY id) FROM venue_responses WHERE status = 'OPEN'",
        "closed",
        held="SELECT id FROM venue_responses WHERE id % 5 = 0",
    ),
    Case(
        "auto_confirm_stale_bookings",
        _unanswered_bookings,
        "SELECT array_agg(id ORDER BY id) FROM bookings WHERE status = 'PENDING_VENUE'",
        "auto_confirmed",
        held="SELECT id FROM bookings WHERE id % 4 = 1",
        sends=True,
    ),
    Case(
        "cancel_orphaned_bookings",
        _orphaned_bookings,
        "SELECT array_agg(id ORDER BY id) FROM bookings WHERE status = 'PENDING_VENUE'",
        "cancelled",
        held="SELECT id FROM bookings WHERE id % 4 = 1",
        sends=True,
    ),
    Case(
        "deliver_reminders",
        _due_reminders,
        "SELECT array_agg(id ORDER BY id) FROM reminders WHERE status = 'PENDING'",
        "reminders_sent",
        held="SELECT id FROM reminders WHERE id % 4 = 1",
        sends=True,
    ),
    Case(
        "rating_prompt",
        _visits_ended,
        "SELECT array_agg(b.id ORDER BY b.id) FROM bookings AS b WHERE NOT EXISTS "
        "(SELECT FROM rating_prompts AS p WHERE p.booking_id = b.id)",
        "prompts_queued",
        sends=True,
    ),
    Case(
        "re_engagement",
        _lapsed_users,
        "SELECT array_agg(u.id ORDER BY u.id) FROM users AS u WHERE NOT EXISTS "
        "(SELECT FROM user_nudges AS n WHERE n.user_id = u.id)",
        "nudges_queued",
        now=MONDAY_WITA,
        sends=True,
    ),
    Case(
        "venue_daily_summary",
        _owned_venues,
        _without_message("venues", "'summary:' || t.id || '\\:2026-11-25'"),
        "summaries_queued",
        tick=SUMMARY_EVENING,
        sends=True,
    ),
    Case(
        "spend_digest",
        _spenders,
        _without_message(
            "(SELECT DISTINCT user_id AS id FROM user_spend_entries)",
            "'spend_digest:' || t.id || '\\:2026-11-24'",
        ),
        "digests_queued",
        tick=DIGEST_MORNING,
        sends=True,
    ),
    Case(
        "daily_nutrition_summary",
        _eaters,
        _without_message(
            "(SELECT DISTINCT user_id AS id FROM nutrition_entries)",
            "'nutrition:' || t.id || '\\:2026-11-25'",
        ),
        "summaries_queued",
        tick=NUTRITION_EVENING,
        sends=True,
    ),
    Case(
        "retry_failed_sends",
        _failed_sends,
        "SELECT array_agg(id ORDER BY id) FROM send_queue WHERE status <> 'SENT'",
        "sent",
        # The send queue claims max(8, 4 x send_concurrency) messages at a time.
        small_chunks={"send_concurrency": 1},
        sends=True,
        first_chunk_commits=2,  # the claim under a lease, then the sends recorded
    ),
]
LOCKING = [case for case in CASES if case.held]


@pytest.fixture
def gateway_for(request: pytest.FixtureRequest) -> Callable[[Case], Any]:
    """The local channel gateway, for a case that sends."""

    def get(case: Case) -> FakeChannelGateway | None:
        return request.getfixturevalue("gateway") if case.sends else None

    return get


def _assert_each_message_delivered_once(
    gateway: FakeChannelGateway | None, n: int
) -> None:
    if gateway is not None:
        assert len(gateway.delivered) == n
        assert len(gateway.received) == n


@pytest.mark.parametrize("case", CASES, ids=str)
def test_two_copies_at_once_do_each_thing_once(
    case: Case, engine: Engine, gateway_for: Callable[[Case], Any]
) -> None:
    gateway = gateway_for(case)
    now, n = case.now or data.utcnow(), 40
    case.seed(engine, n, now)
    assert len(_still_due(engine, case)) == n

    results = run_at_once(
        case.job, engine, now=now, tick=case.tick or now, **case.small_chunks
    )

    assert data.total(results, case.counted) == n
    assert _still_due(engine, case) == []
    _assert_each_message_delivered_once(gateway, n)
    assert case.run(engine, now)[case.counted] == 0


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_crash_half_way_then_a_rerun_does_the_rest_once(
    case: Case, engine: Engine, gateway_for: Callable[[Case], Any]
) -> None:
    gateway = gateway_for(case)
    now, n = case.now or data.utcnow(), 25
    case.seed(engine, n, now)

    with crash_after_commits(engine, case.first_chunk_commits), pytest.raises(Crash):
        case.run(engine, now, **case.small_chunks)
    done_before = n - len(_still_due(engine, case))
    assert 0 < done_before < n

    assert case.run(engine, now, **case.small_chunks)[case.counted] == n - done_before
    assert _still_due(engine, case) == []
    _assert_each_message_delivered_once(gateway, n)


@pytest.mark.parametrize("case", LOCKING, ids=str)
def test_rows_locked_elsewhere_are_skipped_not_waited_for(
    case: Case, engine: Engine, gateway_for: Callable[[Case], Any]
) -> None:
    gateway = gateway_for(case)
    now, n = case.now or data.utcnow(), 30
    case.seed(engine, n, now)
    assert case.held is not None
    assert_skips_rows_locked_elsewhere(
        engine,
        lambda waiting: case.run(waiting, now, **case.small_chunks),
        case.counted,
        f"{case.held} ORDER BY id FOR UPDATE",
        case.due,
        due=n,
    )
    _assert_each_message_delivered_once(gateway, n)


SENDING = [case for case in CASES if case.sends]


@pytest.mark.parametrize("case", SENDING, ids=str)
def test_a_gateway_outage_leaves_its_messages_to_the_send_queue_retry(
    case: Case, engine: Engine, gateway: FakeChannelGateway
) -> None:
    now, n = case.now or data.utcnow(), 10
    case.seed(engine, n, now)
    gateway.fail_next(3, status=503)

    result = case.run(engine, now)

    assert (result["sent"], result["failed"]) == (n - 3, 3)
    assert case.run(engine, now)["sent"] == 0  # the job does not resend them itself
    data.make_sends_due(engine)
    assert run("retry_failed_sends", engine)["sent"] == 3
    assert len(gateway.delivered) == n
    assert len(gateway.received) == n + 3
