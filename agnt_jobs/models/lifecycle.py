"""Account lifecycle records: B2B onboarding sessions (a venue owner signing up,
step by step) and referral codes. Both are personal data of the user they belong to
and go with the user when the user is purged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, one_of, timestamp

B2B_SESSION_STATUSES = ("ACTIVE", "COMPLETED", "ABANDONED")
REFERRAL_STATUSES = ("ACTIVE", "REDEEMED", "EXPIRED")


class B2BSession(Base):
    """One onboarding flow: ACTIVE while the owner works through it, COMPLETED when
    the venue is set up, ABANDONED when idle too long (it may still be resumed by
    the backend until it expires)."""

    __tablename__ = "b2b_onboarding_sessions"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    venue_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("venues.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(Text, server_default="ACTIVE")
    step: Mapped[str] = mapped_column(Text, server_default="start")
    # What the owner typed so far (business name, address, phone): personal data.
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = defaults_to_now()
    last_activity_at: Mapped[datetime] = defaults_to_now()
    expires_at: Mapped[datetime] = timestamp(nullable=False)
    completed_at: Mapped[datetime | None] = timestamp()
    abandoned_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        one_of("status", B2B_SESSION_STATUSES),
        Index("ix_b2b_onboarding_sessions_user_id", "user_id"),
        # mark_abandoned_b2b_sessions: ACTIVE sessions by last activity.
        Index(
            "ix_b2b_onboarding_sessions_active_idle",
            "last_activity_at",
            postgresql_where=text("status = 'ACTIVE'"),
        ),
        # b2b_session_cleanup: uncompleted sessions by expiry.
        Index(
            "ix_b2b_onboarding_sessions_uncompleted_expiry",
            "expires_at",
            postgresql_where=text("status <> 'COMPLETED'"),
        ),
    )


class ReferralCode(Base):
    """A code a user shares; redeemed once by another user, or EXPIRED unredeemed."""

    __tablename__ = "referral_codes"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    referrer_user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(Text, server_default="ACTIVE")
    created_at: Mapped[datetime] = defaults_to_now()
    expires_at: Mapped[datetime] = timestamp(nullable=False)
    redeemed_at: Mapped[datetime | None] = timestamp()
    redeemed_by_user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    expired_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        one_of("status", REFERRAL_STATUSES),
        Index("ix_referral_codes_referrer_user_id", "referrer_user_id"),
        Index("ix_referral_codes_redeemed_by_user_id", "redeemed_by_user_id"),
        Index(
            "ix_referral_codes_active_expiry",
            "expires_at",
            postgresql_where=text("status = 'ACTIVE'"),
        ),
    )
