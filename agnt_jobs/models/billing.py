"""Billing: the venue subscription, which several domains read (a venue is active
only with a live subscription). The billing jobs' own tables join this module."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, one_of, timestamp

# Stripe's subscription statuses, which we mirror.
SUBSCRIPTION_STATUSES = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
)
# A venue with a subscription in one of these is paying (or about to) and active.
LIVE_SUBSCRIPTION_STATUSES = ("trialing", "active", "past_due")


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    venue_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("venues.id"))
    stripe_customer_id: Mapped[str] = mapped_column(Text)
    stripe_subscription_id: Mapped[str | None] = mapped_column(Text, unique=True)
    status: Mapped[str] = mapped_column(Text)
    current_period_end: Mapped[datetime | None] = timestamp()
    created_at: Mapped[datetime] = defaults_to_now()
    updated_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        one_of("status", SUBSCRIPTION_STATUSES),
        # At most one live subscription per venue.
        Index(
            "uq_subscriptions_live_venue_id",
            "venue_id",
            unique=True,
            postgresql_where=text("status IN ('trialing', 'active', 'past_due')"),
        ),
        Index("ix_subscriptions_venue_id", "venue_id"),
    )
