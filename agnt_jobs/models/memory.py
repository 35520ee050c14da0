"""What the agent remembers about a user: memory entries, read and written by the
dreaming jobs and evicted when nobody has used them for a while (unless pinned)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, timestamp


class Memory(Base):
    __tablename__ = "memories"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    # Personal data: goes with the user when the user is purged.
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(Text, server_default="fact")
    content: Mapped[str] = mapped_column(Text)
    pinned: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = defaults_to_now()
    last_accessed_at: Mapped[datetime | None] = timestamp()
    # Set when deep dreaming merged this entry into another (kept for audit).
    merged_into_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("memories.id", ondelete="SET NULL")
    )

    __table_args__ = (
        Index("ix_memories_user_id", "user_id"),
        # Deleting a memory (eviction, or a user's purge) checks this self-reference;
        # without the index each delete scans the whole table.
        Index(
            "ix_memories_merged_into_id",
            "merged_into_id",
            postgresql_where=text("merged_into_id IS NOT NULL"),
        ),
        # Eviction scans unpinned entries by last use.
        Index(
            "ix_memories_evictable",
            text("coalesce(last_accessed_at, created_at)"),
            postgresql_where=text("NOT pinned"),
        ),
    )
