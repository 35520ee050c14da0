"""Venues (restaurants, clubs, spas) and their compound state flags."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, timestamp


class Venue(Base):
    __tablename__ = "venues"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    owner_user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    # The venue's A2A agent: envelopes about its bookings are POSTed here.
    agent_endpoint: Mapped[str | None] = mapped_column(Text)
    # Derived flags, recomputed from their sources (owner, subscription, suspension)
    # by reconcile_venue_compound_state; the platform reads them for speed.
    is_claimed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # A source of truth: set by an operator.
    suspended_at: Mapped[datetime | None] = timestamp()
    created_at: Mapped[datetime] = defaults_to_now()
    updated_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (Index("ix_venues_owner_user_id", "owner_user_id"),)
