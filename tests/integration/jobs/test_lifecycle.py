"""Lifecycle jobs against a real Postgres: purging deleted users (and only them,
with their personal data, keeping anonymised bookings), onboarding sessions,
referral codes and the venues' derived flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs.jobs import lifecycle
from agnt_jobs.models import Base
from agnt_jobs.settings import Settings
from tests.support.jobs import (
    context,
    count_commits,
    run_while_rows_held,
)
from tests.support.lifecycle_data import (
    add_booking,
    add_memory,
    add_referral,
    add_session,
    add_subscription,
    add_user,
    add_users,
    add_venue,
    count,
    scalar,
)

NOW = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)  # 04:00 WITA, the purge's tick
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def test_every_foreign_key_to_users_lets_a_purge_through() -> None:
    """A table that references users without a delete rule would block the purge:
    each one must either go with the user or let go of it."""
    found = []
    for table in Base.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name == "users":
                found.append(f"{table.name}.{fk.parent.name}")
                assert fk.ondelete in ("CASCADE", "SET NULL"), (
                    f"{table.name}.{fk.parent.name} -> users has no ON DELETE "
                    "CASCADE / SET NULL"
                )
    assert "bookings.user_id" in found and "memories.user_id" in found


def _leading_columns(table: sa.Table) -> set[str]:
    leading = {index.expressions[0] for index in table.indexes}
    leading |= {
        c.columns[0]
        for c in table.constraints
        if hasattr(c, "columns")
        and isinstance(c, sa.PrimaryKeyConstraint | sa.UniqueConstraint)
    }
    return {getattr(column, "name", str(column)) for column in leading}


def test_every_foreign_key_a_purge_checks_is_indexed() -> None:
    """Deleting a user checks every foreign key to users, and to every table its
    delete cascades into; an unindexed one turns each deleted row into a scan of
    the referencing table (a chunk of 1,000 users took 69 s on 1M memories
    before memories.merged_into_id had its index)."""
    purged = {"users"}
    grew = True
    while grew:
        grew = False
        for table in Base.metadata.sorted_tables:
            for fk in table.foreign_keys:
                cascades = fk.ondelete == "CASCADE"
                if (
                    cascades
                    and fk.column.table.name in purged
                    and table.name not in purged
                ):
                    purged.add(table.name)
                    grew = True
    unindexed = [
        f"{table.name}.{fk.parent.name}"
        for table in Base.metadata.sorted_tables
        for fk in table.foreign_keys
        if fk.column.table.name in purged
        and fk.parent.name not in _leading_columns(table)
    ]
    assert {"memories", "price_watchers", "price_history"} <= purged
    assert unindexed == []


def test_purge_removes_personal_data_and_keeps_anonymised_records(
    engine: Engine, env: Settings
) -> None:
    with engine.begin() as c:
        gone = add_user(c, deleted_at=NOW - 31 * DAY, name="Gone")
        recent = add_user(c, deleted_at=NOW - 29 * DAY, name="Recent")
        live = add_user(c, name="Live")
        venue = add_venue(c, owner=gone, is_claimed=True)
        kept_booking = add_booking(c, gone, venue, NOW - 40 * DAY)
        other_booking = add_booking(c, live, venue, NOW - 40 * DAY)
        add_memory(c, gone, created_at=NOW - 50 * DAY)
        add_memory(c, live, created_at=NOW - 50 * DAY)
        add_session(c, gone, last_activity_at=NOW, expires_at=NOW + DAY)
        add_referral(c, gone, "GONE1", expires_at=NOW + DAY)
        add_referral(c, live, "LIVE1", expires_at=NOW + DAY, redeemed_by=gone)
        c.execute(
            sa.text(
                "INSERT INTO send_queue (idempotency_key, kind, user_id, channel, "
                "recipient, body, status) VALUES "
                "('sent', 'test', :u, 'whatsapp', '+62811', 'hi Gone', 'SENT'), "
                "('waiting', 'test', :u, 'whatsapp', '+62811', 'hi Gone', 'PENDING'), "
                "('other', 'test', :live, 'whatsapp', '+62822', 'hi Live', 'PENDING')"
            ),
            {"u": gone, "live": live},
        )

    result = lifecycle.purge_deleted_users(context(engine, env, NOW))

    assert result == {
        "users_purged": 1,
        "bookings_anonymised": 1,
        "messages_anonymised": 2,
        "chunks": 1,
    }
    with engine.connect() as c:
        assert sorted(scalar(c, "SELECT array_agg(id) FROM users")) == [recent, live]
        booking = c.execute(
            sa.text("SELECT user_id, guest_name, notes FROM bookings WHERE id = :id"),
            {"id": kept_booking},
        ).one()
        assert tuple(booking) == (None, None, None)
        other = c.execute(
            sa.text("SELECT user_id, guest_name FROM bookings WHERE id = :id"),
            {"id": other_booking},
        ).one()
        assert tuple(other) == (live, "Made Wirawan")
        assert count(c, "memories") == 1
        assert count(c, "b2b_onboarding_sessions") == 0
        assert scalar(c, "SELECT array_agg(code) FROM referral_codes") == ["LIVE1"]
        assert scalar(c, "SELECT redeemed_by_user_id FROM referral_codes") is None
        messages = {
            row.idempotency_key: tuple(row)[1:]
            for row in c.execute(
                sa.text(
                    "SELECT idempotency_key, user_id, recipient, body, status "
                    "FROM send_queue"
                )
            )
        }
        assert messages == {
            "sent": (None, "[purged]", "[purged]", "SENT"),
            "waiting": (None, "[purged]", "[purged]", "DEAD"),
            "other": (live, "+62822", "hi Live", "PENDING"),
        }
        assert scalar(c, "SELECT owner_user_id FROM venues") is None

    again = lifecycle.purge_deleted_users(context(engine, env, NOW))
    assert again["users_purged"] == 0


def test_purge_runs_in_bounded_chunks(engine: Engine, env: Settings) -> None:
    with engine.begin() as c:
        add_users(c, 95, NOW - 60 * DAY)
        add_users(c, 3, None)
    ctx = context(engine, env, NOW, job_chunk_size=10)
    with count_commits(engine) as commits:
        result = lifecycle.purge_deleted_users(ctx)
    assert result["users_purged"] == 95
    assert result["chunks"] == 10
    assert commits[0] == 10
    with engine.connect() as c:
        assert count(c, "users") == 3


def test_purge_refuses_to_start_behind_a_blocking_foreign_key(
    engine: Engine, env: Settings
) -> None:
    with engine.begin() as c:
        add_users(c, 2, NOW - 60 * DAY)
        c.execute(
            sa.text(
                "CREATE TABLE loyalty_cards (id int PRIMARY KEY, "
                "user_id bigint REFERENCES users (id))"
            )
        )
    with pytest.raises(RuntimeError, match=r"loyalty_cards\.loyalty_cards_user_id"):
        lifecycle.purge_deleted_users(context(engine, env, NOW))
    with engine.connect() as c:
        assert count(c, "users") == 2


def test_b2b_session_cleanup_deletes_only_long_expired_uncompleted(
    engine: Engine, env: Settings
) -> None:
    with engine.begin() as c:
        user = add_user(c)
        old = NOW - 30 * DAY
        doomed = [
            add_session(c, user, status=s, last_activity_at=old, expires_at=x)
            for s, x in [
                ("ACTIVE", NOW - 8 * DAY),
                ("ABANDONED", NOW - 7 * DAY - SECOND),
            ]
        ]
        kept = [
            add_session(c, user, status=s, last_activity_at=old, expires_at=x)
            for s, x in [
                ("ABANDONED", NOW - 6 * DAY),  # inside the retention window
                ("ACTIVE", NOW - 7 * DAY),  # exactly at the edge: not yet
                ("COMPLETED", NOW - 90 * DAY),  # the venue's record
            ]
        ]
    assert doomed and kept
    result = lifecycle.b2b_session_cleanup(context(engine, env, NOW))
    assert result["sessions_deleted"] == 2
    with engine.connect() as c:
        left = scalar(
            c, "SELECT array_agg(id ORDER BY id) FROM b2b_onboarding_sessions"
        )
    assert left == kept
    assert (
        lifecycle.b2b_session_cleanup(context(engine, env, NOW))["sessions_deleted"]
        == 0
    )


def test_idle_active_sessions_become_abandoned_once(
    engine: Engine, env: Settings
) -> None:
    with engine.begin() as c:
        user = add_user(c)
        later = NOW + 10 * DAY
        idle = add_session(
            c, user, last_activity_at=NOW - 49 * timedelta(hours=1), expires_at=later
        )
        busy = add_session(
            c, user, last_activity_at=NOW - 47 * timedelta(hours=1), expires_at=later
        )
        done = add_session(
            c,
            user,
            status="COMPLETED",
            last_activity_at=NOW - 9 * DAY,
            expires_at=later,
        )
    result = lifecycle.mark_abandoned_b2b_sessions(context(engine, env, NOW))
    assert result["sessions_abandoned"] == 1
    with engine.connect() as c:
        states = dict(
            c.execute(sa.text("SELECT id, status FROM b2b_onboarding_sessions")).all()
        )
        abandoned_at = scalar(
            c, "SELECT abandoned_at FROM b2b_onboarding_sessions WHERE id = :i", i=idle
        )
    assert states == {idle: "ABANDONED", busy: "ACTIVE", done: "COMPLETED"}
    assert abandoned_at == NOW
    again = lifecycle.mark_abandoned_b2b_sessions(context(engine, env, NOW + DAY))
    assert again["sessions_abandoned"] == 1  # busy is now idle too, idle untouched
    with engine.connect() as c:
        assert (
            scalar(
                c,
                "SELECT abandoned_at FROM b2b_onboarding_sessions WHERE id = :i",
                i=idle,
            )
            == NOW
        )


def test_abandoning_does_not_wait_out_a_session_held_elsewhere(
    engine: Engine, env: Settings
) -> None:
    """A session the backend holds (its owner is typing) while the run walks its
    range: the run abandons every other idle session and ends while that one is
    still held, instead of waiting for the backend; the held one stays ACTIVE
    for the next run."""
    with engine.begin() as c:
        user = add_user(c)
        sessions = [
            add_session(
                c,
                user,
                last_activity_at=NOW - 3 * DAY + n * SECOND,
                expires_at=NOW + 10 * DAY,
            )
            for n in range(30)
        ]
    held, result = run_while_rows_held(
        engine,
        "SELECT id FROM b2b_onboarding_sessions WHERE id = ANY(:ids) "
        "ORDER BY id FOR UPDATE",
        lambda: lifecycle.mark_abandoned_b2b_sessions(
            context(engine, env, NOW, job_chunk_size=10)
        ),
        ids=sessions[4:6],
    )
    assert result["sessions_abandoned"] == 30 - len(held)
    with engine.connect() as c:
        active = scalar(
            c,
            "SELECT array_agg(id ORDER BY id) FROM b2b_onboarding_sessions "
            "WHERE status = 'ACTIVE'",
        )
    assert active == held


def test_unredeemed_referrals_past_expiry_expire(engine: Engine, env: Settings) -> None:
    with engine.begin() as c:
        user, friend = add_user(c), add_user(c)
        stale = add_referral(c, user, "STALE", expires_at=NOW - DAY)
        edge = add_referral(c, user, "EDGE", expires_at=NOW)
        fresh = add_referral(c, user, "FRESH", expires_at=NOW + timedelta(seconds=1))
        used = add_referral(c, user, "USED", expires_at=NOW - DAY, redeemed_by=friend)
    result = lifecycle.expire_stale_referrals(context(engine, env, NOW))
    assert result["referrals_expired"] == 2
    with engine.connect() as c:
        states = dict(c.execute(sa.text("SELECT id, status FROM referral_codes")).all())
    assert states == {
        stale: "EXPIRED",
        edge: "EXPIRED",
        fresh: "ACTIVE",
        used: "REDEEMED",
    }
    assert (
        lifecycle.expire_stale_referrals(context(engine, env, NOW))["referrals_expired"]
        == 0
    )


def _venue_world(engine: Engine) -> dict[str, int]:
    """One venue per situation, each with flags that may or may not have drifted."""
    with engine.begin() as c:
        owner, gone = add_user(c), add_user(c, deleted_at=NOW - DAY)
        v = {
            # right already: claimed, active with a live subscription
            "good": add_venue(c, owner=owner, is_claimed=True, is_active=True),
            # drifted both ways
            "should_be_active": add_venue(c, owner=owner),
            "owner_deleted": add_venue(c, owner=gone, is_claimed=True, is_active=True),
            "suspended": add_venue(
                c, owner=owner, is_claimed=True, is_active=True, suspended_at=NOW
            ),
            "canceled": add_venue(c, owner=owner, is_claimed=True, is_active=True),
            "unowned": add_venue(c, is_claimed=True),
            "past_due": add_venue(c, owner=owner, is_claimed=True),
        }
        for name in ("good", "should_be_active", "owner_deleted", "suspended"):
            add_subscription(c, v[name], "active")
        add_subscription(c, v["canceled"], "canceled")
        add_subscription(c, v["past_due"], "past_due")
    return v


def test_reconcile_fixes_only_drifted_venue_flags(
    engine: Engine, env: Settings
) -> None:
    v = _venue_world(engine)
    ctx = context(engine, env, NOW, job_chunk_size=3)
    result = lifecycle.reconcile_venue_compound_state(ctx)
    assert result == {
        "venues_scanned": 7,
        "claimed_fixed": 3,  # should_be_active, owner_deleted, unowned
        "active_fixed": 5,  # should_be_active, owner_deleted, suspended, canceled,
        "venues_fixed": 6,  # past_due
    }
    with engine.connect() as c:
        flags = {
            row.id: (row.is_claimed, row.is_active, row.updated_at is not None)
            for row in c.execute(
                sa.text("SELECT id, is_claimed, is_active, updated_at FROM venues")
            )
        }
    assert flags == {
        v["good"]: (True, True, False),
        v["should_be_active"]: (True, True, True),
        v["owner_deleted"]: (False, False, True),
        v["suspended"]: (True, False, True),
        v["canceled"]: (True, False, True),
        v["unowned"]: (False, False, True),
        v["past_due"]: (True, True, True),
    }
    assert lifecycle.reconcile_venue_compound_state(ctx)["venues_fixed"] == 0
