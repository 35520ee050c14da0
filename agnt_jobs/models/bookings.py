"""Bookings: a user's reservation at a venue and its status machine

REQUESTED -> PENDING_VENUE -> CONFIRMED | DECLINED
CONFIRMED -> COMPLETED | CANCELLED      (and any open state -> CANCELLED)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, one_of, timestamp

BOOKING_STATUSES = (
    "REQUESTED",
    "PENDING_VENUE",
    "CONFIRMED",
    "DECLINED",
    "COMPLETED",
    "CANCELLED",
)
# Waiting on the venue: the states auto-confirm, recovery and orphan cancel look at.
WAITING_STATUSES = ("REQUESTED", "PENDING_VENUE")


class Booking(Base):
    __tablename__ = "bookings"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    # Kept when the user is purged: the booking stays, anonymised (user_id NULL).
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    venue_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("venues.id"))
    status: Mapped[str] = mapped_column(Text, server_default="REQUESTED")
    slot_start: Mapped[datetime] = timestamp(nullable=False)
    slot_end: Mapped[datetime] = timestamp(nullable=False)
    party_size: Mapped[int] = mapped_column(Integer, server_default=text("2"))
    # Personal data, cleared when the user is purged.
    guest_name: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = defaults_to_now()
    status_changed_at: Mapped[datetime] = defaults_to_now()
    auto_confirmed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    cancelled_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        one_of("status", BOOKING_STATUSES),
        CheckConstraint("slot_end > slot_start", name="slot_order"),
        CheckConstraint("party_size > 0", name="party_size"),
        Index("ix_bookings_status_slot_start", "status", "slot_start"),
        Index("ix_bookings_status_slot_end", "status", "slot_end"),
        Index("ix_bookings_status_status_changed_at", "status", "status_changed_at"),
        Index("ix_bookings_user_id", "user_id"),
        Index("ix_bookings_venue_id_slot_start", "venue_id", "slot_start"),
    )
