"""The send queue (every outbound message to a user or venue owner) and the
dead-letter queue (every piece of work that exhausted its retries, from any source).

A message is inserted once under its idempotency key, delivered through the channel
gateway, and ends SENT, or DEAD after ``max_send_attempts`` (with a dead letter).
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

SEND_STATUSES = ("PENDING", "SENT", "FAILED", "DEAD")


class OutboundMessage(Base):
    __tablename__ = "send_queue"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    # Derived from what the message is about ("reminder:123", "summary:7:2026-11-25"),
    # so a job that runs twice inserts nothing the second time.
    idempotency_key: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    channel: Mapped[str] = mapped_column(Text)
    recipient: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = defaults_to_now()
    # A sender holds a row until this instant; a crashed sender's rows come back
    # when it passes (the gateway deduplicates on the idempotency key).
    claimed_until: Mapped[datetime | None] = timestamp()
    last_error: Mapped[str | None] = mapped_column(Text)
    gateway_message_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = defaults_to_now()
    sent_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        one_of("status", SEND_STATUSES),
        # The senders' scan: only rows still to deliver, in due order.
        Index(
            "ix_send_queue_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('PENDING', 'FAILED')"),
        ),
        Index("ix_send_queue_user_id", "user_id"),
    )


class DeadLetter(Base):
    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    # What gave up ("send_queue", "a2a_dispatch", "fee_collection", "webhook") and
    # the id of its row there: one dead letter per failed piece of work, ever.
    source: Mapped[str] = mapped_column(Text)
    source_id: Mapped[str] = mapped_column(Text)
    error_class: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = defaults_to_now()
    resolved_at: Mapped[datetime | None] = timestamp()
    resolution: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        Index("ix_dead_letters_created_at", "created_at"),
        Index(
            "ix_dead_letters_resolved_at",
            "resolved_at",
            postgresql_where=text("resolved_at IS NOT NULL"),
        ),
        # GET /metrics counts the unresolved ones by source.
        Index(
            "ix_dead_letters_unresolved",
            "source",
            postgresql_where=text("resolved_at IS NULL"),
        ),
    )
