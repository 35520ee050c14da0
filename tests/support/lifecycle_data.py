"""Builders for users, venues, bookings and the other rows the lifecycle and
housekeeping jobs read, inserted with plain SQL. Times are explicit arguments so
each test states the window edge it is about."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tests.support import rows as rows_
from tests.support.rows import scalar as scalar


def add_user(
    connection: Connection,
    *,
    deleted_at: datetime | None = None,
    address: str | None = "+628000001",
    opt_in: bool = True,
    name: str = "Wayan",
) -> int:
    return rows_.user(
        connection,
        display_name=name,
        email=f"{name}@example.com",
        phone=address,
        channel_address=address,
        notifications_opt_in=opt_in,
        deleted_at=deleted_at,
    )


def add_users(connection: Connection, count: int, deleted_at: datetime | None) -> None:
    connection.execute(
        sa.text(
            """
            INSERT INTO users (display_name, channel, channel_address, deleted_at)
            SELECT 'user ' || i, 'whatsapp', '+62' || i, :deleted_at
            FROM generate_series(1, :count) AS i
            """
        ),
        {"count": count, "deleted_at": deleted_at},
    )


def add_venue(
    connection: Connection,
    *,
    owner: int | None = None,
    is_claimed: bool = False,
    is_active: bool = False,
    suspended_at: datetime | None = None,
    name: str = "Warung",
) -> int:
    return rows_.venue(
        connection,
        name=name,
        owner_user_id=owner,
        is_claimed=is_claimed,
        is_active=is_active,
        suspended_at=suspended_at,
    )


def add_subscription(connection: Connection, venue_id: int, status: str) -> int:
    return scalar(
        connection,
        """
        INSERT INTO subscriptions (venue_id, stripe_customer_id, status)
        VALUES (:venue_id, 'cus_' || :venue_id, :status) RETURNING id
        """,
        venue_id=venue_id,
        status=status,
    )


def add_booking(
    connection: Connection, user_id: int | None, venue_id: int, start: datetime
) -> int:
    return rows_.booking(
        connection,
        user_id,
        venue_id,
        "COMPLETED",
        start,
        guest_name="Made Wirawan",
        notes="window table, nut allergy",
    )


def add_memory(
    connection: Connection,
    user_id: int,
    *,
    created_at: datetime,
    last_accessed_at: datetime | None = None,
    pinned: bool = False,
) -> int:
    return scalar(
        connection,
        """
        INSERT INTO memories (user_id, content, pinned, created_at, last_accessed_at)
        VALUES (:user_id, 'likes quiet tables', :pinned, :created_at,
                :last_accessed_at)
        RETURNING id
        """,
        user_id=user_id,
        pinned=pinned,
        created_at=created_at,
        last_accessed_at=last_accessed_at,
    )


def add_session(
    connection: Connection,
    user_id: int,
    *,
    status: str = "ACTIVE",
    last_activity_at: datetime,
    expires_at: datetime,
) -> int:
    return scalar(
        connection,
        """
        INSERT INTO b2b_onboarding_sessions
            (user_id, status, step, data, last_activity_at, expires_at, completed_at)
        VALUES (:user_id, :status, 'menu', CAST(:data AS jsonb), :last_activity_at,
                :expires_at,
                CASE WHEN :status = 'COMPLETED' THEN :last_activity_at END)
        RETURNING id
        """,
        user_id=user_id,
        status=status,
        data=json.dumps({"business_name": "Warung Made", "phone": "+62811"}),
        last_activity_at=last_activity_at,
        expires_at=expires_at,
    )


def add_referral(
    connection: Connection,
    user_id: int,
    code: str,
    *,
    expires_at: datetime,
    redeemed_by: int | None = None,
) -> int:
    return scalar(
        connection,
        """
        INSERT INTO referral_codes
            (code, referrer_user_id, status, expires_at, redeemed_at,
             redeemed_by_user_id)
        VALUES (:code, :user_id,
                CASE WHEN CAST(:redeemed_by AS bigint) IS NULL
                     THEN 'ACTIVE' ELSE 'REDEEMED' END,
                :expires_at,
                CASE WHEN CAST(:redeemed_by AS bigint) IS NOT NULL
                     THEN :expires_at - interval '1 day' END,
                :redeemed_by)
        RETURNING id
        """,
        code=code,
        user_id=user_id,
        expires_at=expires_at,
        redeemed_by=redeemed_by,
    )


def count(
    connection: Connection, table: str, where: str = "true", **params: Any
) -> int:
    return scalar(connection, f"SELECT count(*) FROM {table} WHERE {where}", **params)
