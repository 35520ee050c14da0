"""Agent-to-agent (A2A) traffic with venue agents: the envelopes we send them about
bookings, and the responses they send back.

An envelope is created PENDING and POSTed to the venue's ``agent_endpoint``:

PENDING -> DISPATCHED -> DELIVERED -> RESPONDED
PENDING | DISPATCH_FAILED -> DISPATCH_FAILED (retried with backoff) | EXPIRED

A venue response is OPEN until it is applied to its booking (APPLIED) or closed
without effect (CLOSED, with a reason such as ``orphaned``).
"""

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

ENVELOPE_STATUSES = (
    "PENDING",
    "DISPATCHED",
    "DISPATCH_FAILED",
    "DELIVERED",
    "RESPONDED",
    "EXPIRED",
)
ENVELOPE_KINDS = ("booking_request", "booking_cancel")
RESPONSE_STATUSES = ("OPEN", "APPLIED", "CLOSED")
RESPONSE_DECISIONS = ("ACCEPT", "DECLINE")


class A2AEnvelope(Base):
    __tablename__ = "a2a_envelopes"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    booking_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("bookings.id", ondelete="CASCADE")
    )
    venue_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("venues.id"))
    kind: Mapped[str] = mapped_column(Text, server_default="booking_request")
    # What the venue agent receives (booking ref, slot, party size), frozen at
    # creation so that a re-dispatch sends exactly what the first attempt sent.
    payload: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    status: Mapped[str] = mapped_column(Text, server_default="PENDING")
    # Dispatch attempts so far, counted when an attempt is claimed.
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # When the next dispatch may be tried; while an attempt runs, the end of its
    # claim (a crashed dispatcher's envelope comes back when it passes).
    next_attempt_at: Mapped[datetime | None] = timestamp()
    # The TTL: a PENDING envelope past this is EXPIRED by reap_stale_envelopes.
    expires_at: Mapped[datetime] = timestamp(nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = defaults_to_now()
    status_changed_at: Mapped[datetime] = defaults_to_now()
    dispatched_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        one_of("status", ENVELOPE_STATUSES),
        one_of("kind", ENVELOPE_KINDS),
        # One envelope of each kind per booking, ever: two recoverers racing on
        # one booking create one envelope, and the booking's envelope is findable.
        UniqueConstraint("booking_id", "kind"),
        Index(
            "ix_a2a_envelopes_pending_expires_at",
            "expires_at",
            postgresql_where=text("status = 'PENDING'"),
        ),
        Index(
            "ix_a2a_envelopes_dispatch_failed_next_attempt_at",
            "next_attempt_at",
            postgresql_where=text("status = 'DISPATCH_FAILED'"),
        ),
    )


class VenueResponse(Base):
    __tablename__ = "venue_responses"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    envelope_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("a2a_envelopes.id", ondelete="SET NULL")
    )
    # NULL when the venue agent answered about a booking we could not match.
    booking_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("bookings.id", ondelete="SET NULL")
    )
    venue_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("venues.id"))
    decision: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(Text, server_default="OPEN")
    close_reason: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = defaults_to_now()
    resolved_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        one_of("status", RESPONSE_STATUSES),
        one_of("decision", RESPONSE_DECISIONS),
        Index(
            "ix_venue_responses_open_received_at",
            "received_at",
            postgresql_where=text("status = 'OPEN'"),
        ),
        Index("ix_venue_responses_booking_id", "booking_id"),
        Index("ix_venue_responses_envelope_id", "envelope_id"),
    )
