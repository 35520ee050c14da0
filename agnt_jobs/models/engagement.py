"""What the platform tells users about their bookings and what they tell back:
reminders before a slot, rating prompts after it, the ratings themselves, and the
weekly re-engagement nudges to lapsed users."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, one_of, timestamp

REMINDER_STATUSES = ("PENDING", "SENT", "SKIPPED")


class Reminder(Base):
    """One reminder per booking, ever (``booking_id`` is unique). SENT means handed
    to the send queue, which owns delivery from then on (``reminder:{booking_id}``)."""

    __tablename__ = "reminders"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    booking_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("bookings.id", ondelete="CASCADE"), unique=True
    )
    due_at: Mapped[datetime] = timestamp(nullable=False)
    status: Mapped[str] = mapped_column(Text, server_default="PENDING")
    # Why a reminder was not sent: cancelled, started, unreachable.
    skip_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = defaults_to_now()
    processed_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        one_of("status", REMINDER_STATUSES),
        Index(
            "ix_reminders_pending_due_at",
            "due_at",
            postgresql_where=text("status = 'PENDING'"),
        ),
    )


class RatingPrompt(Base):
    """A booking whose user was asked for a rating: at most once per booking."""

    __tablename__ = "rating_prompts"

    booking_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True
    )
    prompted_at: Mapped[datetime] = defaults_to_now()


class Rating(Base):
    """A user's rating of a visit. User-authored content (the comment), so it goes
    with the user when the user is purged."""

    __tablename__ = "ratings"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    booking_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("bookings.id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    venue_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("venues.id"))
    score: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = defaults_to_now()

    __table_args__ = (
        CheckConstraint("score BETWEEN 1 AND 5", name="score"),
        Index("ix_ratings_venue_id_created_at", "venue_id", "created_at"),
        Index("ix_ratings_user_id", "user_id"),
    )


class UserNudge(Base):
    """A re-engagement nudge: one per user per ISO week (WITA), and the history the
    28-day cooldown reads."""

    __tablename__ = "user_nudges"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    iso_week: Mapped[str] = mapped_column(Text)
    nudged_at: Mapped[datetime] = defaults_to_now()

    __table_args__ = (UniqueConstraint("user_id", "iso_week"),)
