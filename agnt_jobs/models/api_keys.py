"""API keys of the platform's B2B API: the key (hashed), its daily query counter and
the history of that counter, and metered usage events with the batches that bill
them to Stripe.

An event is unbilled until charge_unbilled_usage binds it to a usage batch (one per
Stripe customer per cutoff); the batch is the intended Stripe write, and BILLED once
its invoice item exists in Stripe. ``billed_at`` on the event follows its batch.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, one_of, timestamp

USAGE_BATCH_STATUSES = ("PENDING", "BILLED")


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    # sha256 of the key, hex: the key itself is shown once and never stored.
    key_hash: Mapped[str] = mapped_column(Text, unique=True)
    key_prefix: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    # The owner; the key and its usage stay (for billing) when the user is purged.
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    # Who pays for the key's metered usage; NULL: a free key, never billed.
    stripe_customer_id: Mapped[str | None] = mapped_column(Text)
    # Incremented by the API on each query; reset daily by reset_api_key_queries_today.
    queries_today: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # The WITA date of the last reset: a key is reset at most once per date.
    last_reset_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = defaults_to_now()
    revoked_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        CheckConstraint("queries_today >= 0", name="queries_today"),
        Index("ix_api_keys_user_id", "user_id"),
        Index("ix_api_keys_stripe_customer_id", "stripe_customer_id"),
    )


class ApiKeyDailyUsage(Base):
    """A key's query count of one WITA date, snapshotted before the counter reset."""

    __tablename__ = "api_key_daily_usage"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    api_key_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("api_keys.id"))
    usage_date: Mapped[date] = mapped_column(Date)
    queries: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = defaults_to_now()

    __table_args__ = (
        UniqueConstraint("api_key_id", "usage_date"),
        Index("ix_api_key_daily_usage_usage_date", "usage_date"),
    )


class UsageBatch(Base):
    """The usage of one Stripe customer before one cutoff: one Stripe invoice item."""

    __tablename__ = "usage_batches"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    stripe_customer_id: Mapped[str] = mapped_column(Text)
    cutoff: Mapped[datetime] = timestamp(nullable=False)
    # "usage:{customer}:{cutoff date}": the Stripe idempotency key and agnt_ref.
    idempotency_key: Mapped[str] = mapped_column(Text, unique=True)
    event_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    quantity: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    unit_price: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    currency: Mapped[str] = mapped_column(Text, server_default="IDR")
    status: Mapped[str] = mapped_column(Text, server_default="PENDING")
    stripe_invoice_item_id: Mapped[str | None] = mapped_column(Text, unique=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = defaults_to_now()
    billed_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        one_of("status", USAGE_BATCH_STATUSES),
        Index(
            "ix_usage_batches_pending",
            "id",
            postgresql_where=text("status = 'PENDING'"),
        ),
    )


class ApiKeyUsageEvent(Base):
    """One metered use of a key (``quantity`` queries), written by the API."""

    __tablename__ = "api_key_usage_events"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    api_key_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("api_keys.id"))
    occurred_at: Mapped[datetime] = defaults_to_now()
    quantity: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    # Set once, by the batching step: the batch (and so the Stripe invoice item)
    # this event is billed in. Never moved to another batch.
    usage_batch_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("usage_batches.id")
    )
    billed_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        # The batching scan: a key's events not yet in a batch, by time.
        Index(
            "ix_api_key_usage_events_unbatched",
            "api_key_id",
            "occurred_at",
            postgresql_where=text("usage_batch_id IS NULL"),
        ),
        # Marking a billed batch's events.
        Index(
            "ix_api_key_usage_events_unmarked",
            "usage_batch_id",
            postgresql_where=text("usage_batch_id IS NOT NULL AND billed_at IS NULL"),
        ),
    )
