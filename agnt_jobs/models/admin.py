"""The admin page's sessions: one row per sign-in, deleted by signing out."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import func

from agnt_jobs.models.base import Base


class AdminSession(Base):
    __tablename__ = "admin_sessions"

    # The hash of the cookie's nonce, never the nonce: reading this table gives
    # no one a session.
    nonce_sha256: Mapped[str] = mapped_column(Text, primary_key=True)
    signed_in_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The address the sign-in came from.
    client: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_admin_sessions_expires_at", "expires_at"),)
