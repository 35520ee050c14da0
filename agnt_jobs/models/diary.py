"""What users log with their agent: money spent and food eaten, and their daily
calorie goal. Personal data: it goes with the user when the user is purged."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, timestamp


class UserSpendEntry(Base):
    __tablename__ = "user_spend_entries"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    venue_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("venues.id", ondelete="SET NULL")
    )
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(Text, server_default="IDR")
    category: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    spent_at: Mapped[datetime] = timestamp(nullable=False)
    created_at: Mapped[datetime] = defaults_to_now()

    __table_args__ = (
        CheckConstraint("amount >= 0", name="amount"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency"),
        # The digest's per-user day sum, and the purge's cascade by user.
        Index("ix_user_spend_entries_user_id_spent_at", "user_id", "spent_at"),
        # The digest's walk of one day's entries, in chunks.
        Index("ix_user_spend_entries_spent_at_id", "spent_at", "id"),
    )


class NutritionEntry(Base):
    __tablename__ = "nutrition_entries"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    eaten_at: Mapped[datetime] = timestamp(nullable=False)
    description: Mapped[str] = mapped_column(Text)
    calories: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = defaults_to_now()

    __table_args__ = (
        CheckConstraint("calories >= 0", name="calories"),
        Index("ix_nutrition_entries_user_id_eaten_at", "user_id", "eaten_at"),
        # The summary's walk of one day's entries, in chunks.
        Index("ix_nutrition_entries_eaten_at_id", "eaten_at", "id"),
    )


class CalorieGoal(Base):
    """A user's daily calorie target; at most one per user."""

    __tablename__ = "calorie_goals"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    daily_calories: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = defaults_to_now()

    __table_args__ = (CheckConstraint("daily_calories > 0", name="daily_calories"),)
