"""The fleet wiki: pages the agent fleet shares, kept in line with the fleet delta
log by wiki_reconcile, and the cursor of the last delta-log entry it applied."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Integer, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, timestamp


class FleetWikiPage(Base):
    __tablename__ = "fleet_wiki_pages"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    slug: Mapped[str] = mapped_column(Text, unique=True)
    title: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = defaults_to_now()
    updated_at: Mapped[datetime] = defaults_to_now()
    retired_at: Mapped[datetime | None] = timestamp()
    # The delta-log entry last applied to this page: older ones are never re-applied.
    last_delta_id: Mapped[int] = mapped_column(BigInteger)
    last_agent_id: Mapped[str | None] = mapped_column(Text)


class FleetWikiCursor(Base):
    """One row: the highest delta-log id (live or archive) wiki_reconcile applied."""

    __tablename__ = "fleet_wiki_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_delta_id: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    updated_at: Mapped[datetime] = defaults_to_now()

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)
