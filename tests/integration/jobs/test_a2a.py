"""A2A jobs against a real Postgres, a local venue agent and a local channel
gateway: reap_stale_envelopes, sweep_orphaned_responses, recover_stuck_bookings,
retry_dispatch_failed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from agnt_jobs.clients.a2a import A2AClient
from agnt_jobs.delivery import dispatch
from agnt_jobs.standins.gateway import FakeChannelGateway
from agnt_jobs.standins.venue_agent import FakeVenueAgent
from tests.support import bookings_data as data
from tests.support.bookings_data import Crash, crash_on, run, utcnow

H, M = timedelta(hours=1), timedelta(minutes=1)


def _envelope(engine: Engine, envelope_id: int) -> tuple[object, ...]:
    return data.rows(
        engine,
        "SELECT status, attempts FROM a2a_envelopes WHERE id = :id",
        id=envelope_id,
    )[0]


def _booking_status(engine: Engine, booking_id: int) -> str:
    return data.scalar(
        engine, "SELECT status FROM bookings WHERE id = :id", id=booking_id
    )


# --- reap_stale_envelopes -------------------------------------------------------------


def test_reap_expires_only_pending_envelopes_past_their_ttl(engine: Engine) -> None:
    now, place = utcnow(), data.venue(engine)

    def env(status: str, expires: timedelta, **values: object) -> int:
        b = data.booking(engine, None, place, "REQUESTED", now + 24 * H)
        return data.envelope(engine, b, status, expires_at=now + expires, **values)

    stale = env("PENDING", -M)
    at_ttl = env("PENDING", timedelta(0))
    fresh = env("PENDING", M)
    dispatched = env("DISPATCHED", -H)
    failed = env("DISPATCH_FAILED", -H)
    being_sent = env("PENDING", -H, next_attempt_at=now + 5 * M, attempts=1)

    assert run("reap_stale_envelopes", engine, now=now) == {"expired": 2}
    assert _envelope(engine, stale)[0] == _envelope(engine, at_ttl)[0] == "EXPIRED"
    assert _envelope(engine, fresh)[0] == "PENDING"
    assert _envelope(engine, dispatched)[0] == "DISPATCHED"
    assert _envelope(engine, failed)[0] == "DISPATCH_FAILED"
    assert _envelope(engine, being_sent)[0] == "PENDING"
    assert run("reap_stale_envelopes", engine, now=now) == {"expired": 0}


# --- sweep_orphaned_responses ---------------------------------------------------------


def test_sweep_closes_open_responses_without_a_live_booking(engine: Engine) -> None:
    now, place, other = utcnow(), data.venue(engine), data.venue(engine)

    def reply(status: str | None, age: timedelta, at: int | None = None) -> int:
        b = data.booking(engine, None, place, status, now + 24 * H) if status else None
        return data.response(engine, b, at or place, "ACCEPT", received_at=now - age)

    no_booking = reply(None, H)
    cancelled = reply("CANCELLED", H)
    decided = reply("CONFIRMED", 16 * M)
    wrong_venue = reply("PENDING_VENUE", H, at=other)
    live = reply("PENDING_VENUE", H)
    too_new = reply("CANCELLED", 14 * M)
    applied = data.response(engine, None, place, "DECLINE", status="APPLIED")

    assert run("sweep_orphaned_responses", engine, now=now) == {"closed": 4}
    closed = data.rows(
        engine,
        "SELECT id FROM venue_responses WHERE status = 'CLOSED' "
        "AND close_reason = 'orphaned' ORDER BY id",
    )
    assert [r for (r,) in closed] == [no_booking, cancelled, decided, wrong_venue]
    for r in (live, too_new):
        assert (
            data.scalar(
                engine, "SELECT status FROM venue_responses WHERE id = :id", id=r
            )
            == "OPEN"
        )
    assert (
        data.scalar(
            engine, "SELECT status FROM venue_responses WHERE id = :id", id=applied
        )
        == "APPLIED"
    )
    assert run("sweep_orphaned_responses", engine, now=now) == {"closed": 0}


# --- recover_stuck_bookings -----------------------------------------------------------


def test_recover_applies_stuck_responses_and_tells_the_user(
    engine: Engine, gateway: FakeChannelGateway, venue_agent: FakeVenueAgent
) -> None:
    now, guest = utcnow(), data.user(engine)
    place = data.venue(engine, agent_endpoint=venue_agent.endpoint)

    def waiting_with_reply(*replies: tuple[str, timedelta]) -> tuple[int, int, list]:
        b = data.booking(engine, guest, place, "PENDING_VENUE", now + 24 * H)
        e = data.envelope(engine, b, "DISPATCHED")
        ids = [
            data.response(engine, b, place, d, envelope_id=e, received_at=now - age)
            for d, age in replies
        ]
        return b, e, ids

    accepted, acc_env, _ = waiting_with_reply(("ACCEPT", 20 * M))
    # Declined after first accepting: the last word wins.
    declined, _, (first, last) = waiting_with_reply(
        ("ACCEPT", 40 * M), ("DECLINE", 30 * M)
    )
    too_new, new_env, _ = waiting_with_reply(("ACCEPT", 5 * M))

    result = run("recover_stuck_bookings", engine, now=now)

    assert result["responses_applied"] == 2
    assert result["responses_superseded"] == 1
    assert result["sent"] == 2
    assert _booking_status(engine, accepted) == "CONFIRMED"
    assert _booking_status(engine, declined) == "DECLINED"
    assert _booking_status(engine, too_new) == "PENDING_VENUE"
    assert _envelope(engine, acc_env)[0] == "RESPONDED"
    assert _envelope(engine, new_env)[0] == "DISPATCHED"
    statuses = dict(
        data.rows(
            engine,
            "SELECT id, status || ':' || coalesce(close_reason, '') "
            "FROM venue_responses",
        )
    )
    assert statuses[first] == "CLOSED:superseded"
    assert statuses[last] == "APPLIED:"
    assert "cannot take" in gateway.delivered[f"booking_decision:{declined}"]["text"]
    assert "confirmed" in gateway.delivered[f"booking_decision:{accepted}"]["text"]

    again = run("recover_stuck_bookings", engine, now=now)
    assert again["responses_applied"] == 0 and again["sent"] == 0
    assert len(gateway.received) == 2


def _stuck_requests(engine: Engine, endpoint: str | None, count: int) -> list[int]:
    now, guest = utcnow(), data.user(engine)
    place = data.venue(engine, agent_endpoint=endpoint)
    return [
        data.booking(
            engine, guest, place, "REQUESTED", now + 24 * H, changed_at=now - 20 * M
        )
        for _ in range(count)
    ]


def test_recover_dispatches_an_envelope_for_a_booking_without_one(
    engine: Engine, gateway: FakeChannelGateway, venue_agent: FakeVenueAgent
) -> None:
    now = utcnow()
    stuck = _stuck_requests(engine, venue_agent.endpoint, 2)
    place = data.venue(engine, agent_endpoint=venue_agent.endpoint)
    fresh = data.booking(
        engine, None, place, "REQUESTED", now + 24 * H, changed_at=now - 5 * M
    )
    past = data.booking(
        engine, None, place, "REQUESTED", now - H, changed_at=now - 5 * H
    )
    # A PENDING envelope a crash left undispatched, and the platform's own fresh one.
    crashed = data.booking(
        engine, None, place, "REQUESTED", now + 24 * H, changed_at=now - H
    )
    crashed_env = data.envelope(engine, crashed, "PENDING")
    platform = data.booking(engine, None, place, "REQUESTED", now + 24 * H)
    platform_env = data.envelope(engine, platform, "PENDING")

    result = run("recover_stuck_bookings", engine, now=now)

    assert result["envelopes_created"] == 2
    assert result["dispatched"] == 3
    for b in (*stuck, crashed):
        assert _booking_status(engine, b) == "PENDING_VENUE"
    for b in (fresh, past, platform):
        assert _booking_status(engine, b) == "REQUESTED"
    assert (
        data.scalar(
            engine,
            "SELECT count(*) FROM a2a_envelopes WHERE booking_id = ANY(:ids)",
            ids=[fresh, past],
        )
        == 0
    )
    assert _envelope(engine, crashed_env) == ("DISPATCHED", 1)
    assert _envelope(engine, platform_env) == ("PENDING", 0)
    sent = sorted(e["booking_id"] for e in venue_agent.envelopes.values())
    assert sent == sorted([*stuck, crashed])
    body = next(
        e for e in venue_agent.envelopes.values() if e["booking_id"] == stuck[0]
    )
    assert body["kind"] == "booking_request"
    assert body["payload"]["party_size"] == 2

    again = run("recover_stuck_bookings", engine, now=now)
    assert again["envelopes_created"] == 0 and again["dispatched"] == 0
    assert len(venue_agent.received) == 3


def test_recover_crash_after_creating_envelopes_dispatches_them_on_rerun(
    engine: Engine, gateway: FakeChannelGateway, venue_agent: FakeVenueAgent
) -> None:
    stuck = _stuck_requests(engine, venue_agent.endpoint, 5)
    with crash_on(engine, "SET attempts = e.attempts + 1"), pytest.raises(Crash):
        run("recover_stuck_bookings", engine)
    assert data.scalar(engine, "SELECT count(*) FROM a2a_envelopes") == 5
    assert venue_agent.received == []
    result = run("recover_stuck_bookings", engine)
    assert result["envelopes_created"] == 0 and result["dispatched"] == 5
    assert sorted(e["booking_id"] for e in venue_agent.envelopes.values()) == stuck


def test_recover_agent_failure_leaves_envelope_for_retry(
    engine: Engine, gateway: FakeChannelGateway, venue_agent: FakeVenueAgent
) -> None:
    (stuck,) = _stuck_requests(engine, venue_agent.endpoint, 1)
    venue_agent.fail_next(1, status=503)
    result = run("recover_stuck_bookings", engine)
    assert result["dispatch_failed"] == 1
    (status, attempts, wait) = data.rows(
        engine,
        "SELECT status, attempts, next_attempt_at - now() FROM a2a_envelopes",
    )[0]
    assert (status, attempts) == ("DISPATCH_FAILED", 1)
    assert wait > timedelta(seconds=50)
    assert _booking_status(engine, stuck) == "REQUESTED"


def test_recover_two_copies_create_and_dispatch_each_envelope_once(
    engine: Engine, gateway: FakeChannelGateway, venue_agent: FakeVenueAgent
) -> None:
    stuck = _stuck_requests(engine, venue_agent.endpoint, 30)
    results = data.run_at_once("recover_stuck_bookings", engine, job_chunk_size=4)
    assert data.total(results, "envelopes_created") == 30
    assert data.total(results, "dispatched") == 30
    assert len(venue_agent.received) == 30
    assert sorted(e["booking_id"] for e in venue_agent.envelopes.values()) == stuck


# --- retry_dispatch_failed ------------------------------------------------------------


def _failed_envelopes(
    engine: Engine, endpoint: str | None, count: int, **values: object
) -> list[int]:
    now, place = utcnow(), data.venue(engine, agent_endpoint=endpoint)
    ids = []
    for _ in range(count):
        b = data.booking(engine, None, place, "REQUESTED", now + 24 * H)
        fields = {"attempts": 1, "next_attempt_at": now - M, **values}
        ids.append(data.envelope(engine, b, "DISPATCH_FAILED", **fields))
    return ids


def test_retry_dispatch_sends_due_envelopes_and_retires_moot_ones(
    engine: Engine, venue_agent: FakeVenueAgent
) -> None:
    now = utcnow()
    (due,) = _failed_envelopes(engine, venue_agent.endpoint, 1)
    (not_yet,) = _failed_envelopes(
        engine, venue_agent.endpoint, 1, next_attempt_at=now + M
    )
    (moot,) = _failed_envelopes(engine, venue_agent.endpoint, 1)
    data.execute(
        engine,
        "UPDATE bookings SET status = 'CANCELLED' WHERE id = "
        "(SELECT booking_id FROM a2a_envelopes WHERE id = :id)",
        id=moot,
    )

    result = run("retry_dispatch_failed", engine, now=now)

    assert (result["dispatched"], result["retired"]) == (1, 1)
    assert _envelope(engine, due) == ("DISPATCHED", 2)
    assert _envelope(engine, not_yet) == ("DISPATCH_FAILED", 1)
    assert _envelope(engine, moot) == ("EXPIRED", 1)
    assert data.scalar(engine, "SELECT count(*) FROM dead_letters") == 0
    booking = data.scalar(
        engine, "SELECT booking_id FROM a2a_envelopes WHERE id = :id", id=due
    )
    assert _booking_status(engine, booking) == "PENDING_VENUE"
    again = run("retry_dispatch_failed", engine, now=now)
    assert again["dispatched"] == 0 and again["retired"] == 0
    assert len(venue_agent.received) == 1


def test_retry_dispatch_backs_off_then_expires_with_one_dead_letter(
    engine: Engine, venue_agent: FakeVenueAgent
) -> None:
    (env,) = _failed_envelopes(engine, venue_agent.endpoint, 1)
    venue_agent.fail_next(10, status=500)
    outcomes = []
    for _ in range(5):
        outcomes.append(
            run("retry_dispatch_failed", engine, a2a_max_dispatch_attempts=4)
        )
        data.execute(engine, "UPDATE a2a_envelopes SET next_attempt_at = now()")
    assert [o["dispatch_failed"] for o in outcomes] == [1, 1, 0, 0, 0]
    assert [o["expired"] for o in outcomes] == [0, 0, 1, 0, 0]
    assert _envelope(engine, env) == ("EXPIRED", 4)
    assert data.rows(
        engine, "SELECT source, source_id, error_class, attempts FROM dead_letters"
    ) == [("a2a_dispatch", str(env), "exhausted", 4)]


def test_retry_dispatch_refused_or_agentless_expires_at_once(
    engine: Engine, venue_agent: FakeVenueAgent
) -> None:
    refused = _failed_envelopes(engine, venue_agent.endpoint, 1)
    agentless = _failed_envelopes(engine, None, 1)
    venue_agent.refuse()
    assert run("retry_dispatch_failed", engine)["expired"] == 2
    letters = data.rows(
        engine, "SELECT source_id, error_class FROM dead_letters ORDER BY id"
    )
    assert sorted(letters) == sorted(
        [(str(refused[0]), "permanent"), (str(agentless[0]), "permanent")]
    )


def test_retry_dispatch_crashed_claim_is_retried_after_its_lease(
    engine: Engine, venue_agent: FakeVenueAgent
) -> None:
    envs = _failed_envelopes(engine, venue_agent.endpoint, 3)
    # Crash after the agent accepted the envelopes, before recording it.
    with crash_on(engine, "SET status = 'DISPATCHED'"), pytest.raises(Crash):
        run("retry_dispatch_failed", engine)
    assert len(venue_agent.envelopes) == 3
    assert run("retry_dispatch_failed", engine)["dispatched"] == 0  # still claimed
    data.execute(
        engine,
        "UPDATE a2a_envelopes SET next_attempt_at = now() - interval '1 s'",
    )
    assert run("retry_dispatch_failed", engine)["dispatched"] == 3
    assert [_envelope(engine, e) for e in envs] == [("DISPATCHED", 3)] * 3
    # Sent twice, accepted once: the agent deduplicated on the idempotency key.
    assert len(venue_agent.received) == 6 and len(venue_agent.envelopes) == 3


def test_retry_dispatch_two_copies_send_each_envelope_once(
    engine: Engine, venue_agent: FakeVenueAgent
) -> None:
    envs = _failed_envelopes(engine, venue_agent.endpoint, 40)
    results = data.run_at_once(
        "retry_dispatch_failed", engine, a2a_dispatch_concurrency=2
    )
    assert data.total(results, "dispatched") == 40
    assert len(venue_agent.received) == 40
    assert sorted(e["id"] for e in venue_agent.envelopes.values()) == envs


def test_retry_dispatch_records_only_the_envelopes_it_still_holds(
    engine: Engine, venue_agent: FakeVenueAgent
) -> None:
    envs = _failed_envelopes(engine, venue_agent.endpoint, 3)
    settings = data.context(engine).settings
    with A2AClient.from_settings(settings) as client:
        queue = dispatch.drain(engine, settings, client, statuses=("DISPATCH_FAILED",))
        rows = queue.claim()
        # Its lease ran out mid-send and another drain claimed the second one.
        data.execute(
            engine,
            "UPDATE a2a_envelopes SET attempts = attempts + 1 WHERE id = :id",
            id=envs[1],
        )
        with engine.begin() as connection:
            counts = queue.record(connection, rows, [202, 202, 202])

    assert counts == {"dispatched": 2, "claim_lost": 1}
    assert [_envelope(engine, e) for e in envs] == [
        ("DISPATCHED", 2),
        ("DISPATCH_FAILED", 3),
        ("DISPATCHED", 2),
    ]
    moved = [
        _booking_status(
            engine,
            data.scalar(
                engine, "SELECT booking_id FROM a2a_envelopes WHERE id = :id", id=e
            ),
        )
        for e in envs
    ]
    assert moved == ["PENDING_VENUE", "REQUESTED", "PENDING_VENUE"]
