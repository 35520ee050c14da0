"""Price watchers: a user asks to be told when a product on Shopee, Tokopedia or
Lazada falls to a target price. check_price_watchers fetches the current price,
keeps a history of what it saw and notifies once per target."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Numeric,
    Text,
    UniqueConstraint,
    column,
    nulls_first,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, one_of, timestamp

MARKETPLACES = ("shopee", "tokopedia", "lazada")
WATCHER_STATUSES = ("ACTIVE", "PAUSED", "ENDED")

# Rupiah amounts are whole, but Lazada and Shopee can show fractions in other
# currencies; 14 digits with 2 decimals covers both.
Money = Numeric(14, 2)


class PriceWatcher(Base):
    __tablename__ = "price_watchers"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    marketplace: Mapped[str] = mapped_column(Text)
    # The marketplace's own product reference: Shopee "shopid.itemid", Tokopedia
    # product id, Lazada item id.
    product_ref: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    target_price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(Text, server_default="IDR")
    status: Mapped[str] = mapped_column(Text, server_default="ACTIVE")
    created_at: Mapped[datetime] = defaults_to_now()
    last_price: Mapped[Decimal | None] = mapped_column(Money)
    last_checked_at: Mapped[datetime | None] = timestamp()
    last_error: Mapped[str | None] = mapped_column(Text)
    # A run holds the watchers it is fetching until this instant.
    claimed_until: Mapped[datetime | None] = timestamp()
    # Set when the price first reached target_price; the notification is sent once.
    # Changing the target (the app clears this) arms the watcher again.
    notified_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        one_of("marketplace", MARKETPLACES),
        one_of("status", WATCHER_STATUSES),
        CheckConstraint("target_price > 0", name="target_price"),
        Index("ix_price_watchers_user_id", "user_id"),
        # The job's claim: active watchers of one marketplace, least recently
        # checked first, in the index's order so a chunk reads only its rows.
        Index(
            "ix_price_watchers_active_due",
            "marketplace",
            nulls_first(column("last_checked_at")),
            "id",
            postgresql_where=text("status = 'ACTIVE'"),
        ),
    )


class PricePoint(Base):
    """One observed price of a watcher's product, at most one per watcher per run
    tick (a repeated run records nothing new)."""

    __tablename__ = "price_history"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    watcher_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("price_watchers.id", ondelete="CASCADE")
    )
    price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(Text)
    # The scheduled tick of the run that observed it.
    tick: Mapped[datetime] = timestamp(nullable=False)
    observed_at: Mapped[datetime] = defaults_to_now()

    __table_args__ = (UniqueConstraint("watcher_id", "tick"),)
