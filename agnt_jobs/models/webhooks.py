"""Outbound webhooks: endpoints that venues and B2B partners register, and each
delivery of an event to one. The backend makes the first attempt; a failed delivery
is retried by drain_webhook_retries until it is DELIVERED or DEAD."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, one_of, timestamp

DELIVERY_STATUSES = ("PENDING", "DELIVERED", "FAILED", "DEAD")


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    venue_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("venues.id", ondelete="CASCADE")
    )
    url: Mapped[str] = mapped_column(Text)
    # Shared with the receiver, who verifies our HMAC-SHA256 signature with it.
    # Never logged.
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = defaults_to_now()
    # Dead deliveries since the last successful one; at the threshold the endpoint
    # is disabled and nothing more is sent to it until an operator re-enables it.
    dead_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    disabled_at: Mapped[datetime | None] = timestamp()
    disabled_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_webhook_endpoints_venue_id", "venue_id"),)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    # The event's own id: one delivery per event per endpoint, ever; receivers
    # deduplicate on the delivery id we send.
    event_id: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(Text, server_default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = defaults_to_now()
    claimed_until: Mapped[datetime | None] = timestamp()
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = defaults_to_now()
    delivered_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        one_of("status", DELIVERY_STATUSES),
        UniqueConstraint("endpoint_id", "event_id"),
        # The drain's scan, and the health monitor's backlog count.
        Index(
            "ix_webhook_deliveries_retry_due",
            "next_attempt_at",
            postgresql_where=text("status = 'FAILED'"),
        ),
    )
