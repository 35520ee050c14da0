"""Users of the platform: who they are, how to reach them, what they agreed to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, one_of, timestamp

CHANNELS = ("whatsapp", "telegram", "web", "email")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    # The channel gateway's address of the user on their channel (phone, chat id).
    channel: Mapped[str] = mapped_column(Text)
    channel_address: Mapped[str | None] = mapped_column(Text)
    locale: Mapped[str] = mapped_column(Text, server_default="id")
    created_at: Mapped[datetime] = defaults_to_now()
    last_active_at: Mapped[datetime | None] = timestamp()
    # Service messages (reminders, summaries) vs. marketing (re-engagement nudges).
    notifications_opt_in: Mapped[bool] = mapped_column(
        Boolean, server_default=text("true")
    )
    marketing_opt_in: Mapped[bool] = mapped_column(
        Boolean, server_default=text("false")
    )
    deleted_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        one_of("channel", CHANNELS),
        Index(
            "ix_users_deleted_at",
            "deleted_at",
            postgresql_where=text("deleted_at IS NOT NULL"),
        ),
        Index("ix_users_last_active_at", "last_active_at"),
    )
