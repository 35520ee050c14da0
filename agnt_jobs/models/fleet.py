"""The fleet delta log (changes the agent fleet reports about its shared wiki) and
its archive. rotate_delta_log moves past weeks into the archive; wiki_reconcile
applies entries from both, in id order, so rotation never loses a change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, one_of, timestamp

DELTA_ACTIONS = ("create", "update", "retire")


class FleetDelta(Base):
    __tablename__ = "fleet_delta_log"

    id: Mapped[int] = mapped_column(
        BigInteger, Identity(always=False), primary_key=True
    )
    created_at: Mapped[datetime] = defaults_to_now()
    agent_id: Mapped[str] = mapped_column(Text)
    page_slug: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (
        one_of("action", DELTA_ACTIONS),
        Index("ix_fleet_delta_log_created_at", "created_at"),
    )


class FleetDeltaArchive(Base):
    """Same columns, same ids as the live log; plus when the entry was archived."""

    __tablename__ = "fleet_delta_log_archive"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = timestamp(nullable=False)
    agent_id: Mapped[str] = mapped_column(Text)
    page_slug: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    archived_at: Mapped[datetime] = defaults_to_now()

    __table_args__ = (
        one_of("action", DELTA_ACTIONS),
        Index("ix_fleet_delta_log_archive_created_at", "created_at"),
    )
