"""The knowledge graph: entities (users, venues, categories, and whatever operators
add by hand) and the weighted edges between them.

An edge is either ``derived`` (recomputed from bookings by rebuild_entity_graph, which
replaces the whole derived set atomically) or ``manual`` (made by hand, never touched by
the job). Entities of users and venues point at their row, so purging a user removes
their entity and every edge that touches it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Double,
    ForeignKey,
    Index,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, one_of, timestamp

SOURCES = ("derived", "manual")


class Entity(Base):
    __tablename__ = "entities"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)  # user, venue, category, ...
    key: Mapped[str] = mapped_column(Text)  # the id or name within its kind
    label: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text, server_default="manual")
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    venue_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("venues.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = defaults_to_now()

    __table_args__ = (
        one_of("source", SOURCES),
        UniqueConstraint("kind", "key"),
        # Purge cascades by user/venue; the graph builder reads a range of users'
        # (or venues') entities of one kind, in the index alone.
        Index("ix_entities_user_id_kind", "user_id", "kind"),
        Index("ix_entities_venue_id_kind", "venue_id", "kind"),
    )


class EntityEdge(Base):
    __tablename__ = "entity_edges"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    src_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("entities.id", ondelete="CASCADE")
    )
    dst_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("entities.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(Text)  # visited, co_visited, affinity, ...
    source: Mapped[str] = mapped_column(Text, server_default="manual")
    weight: Mapped[float] = mapped_column(Double, server_default="1")
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = defaults_to_now()
    updated_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (
        one_of("source", SOURCES),
        UniqueConstraint("src_id", "dst_id", "kind", "source"),
        Index("ix_entity_edges_dst_id", "dst_id"),
    )
