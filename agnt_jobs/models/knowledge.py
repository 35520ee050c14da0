"""What the agent learns from conversations: the messages themselves (interactions),
the nightly reflections and weekly insights the dreaming jobs write about each user,
and the FAQ candidates and draft entries compiled from support conversations."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
)
from sqlalchemy import text as sql
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from agnt_jobs.models.base import Base
from agnt_jobs.models.types import defaults_to_now, identity, one_of, timestamp

ROLES = ("user", "agent")
TEXT_METHODS = ("extractive", "llm")


class Interaction(Base):
    """One message of a conversation between a user and the agent."""

    __tablename__ = "interactions"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    # Personal data: goes with the user when the user is purged.
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    conversation_id: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    # A conversation with customer support (the FAQ jobs read only these).
    is_support: Mapped[bool] = mapped_column(Boolean, server_default=sql("false"))
    created_at: Mapped[datetime] = defaults_to_now()

    __table_args__ = (
        one_of("role", ROLES),
        # light_dreaming: who talked in the window; then each user's messages.
        Index("ix_interactions_created_at", "created_at"),
        Index("ix_interactions_user_id_created_at", "user_id", "created_at"),
        # faq_compilation: the agent's reply that follows a question.
        Index("ix_interactions_conversation_id_id", "conversation_id", "id"),
        # faq_extraction: the users' support messages, keyset by (created_at, id).
        Index(
            "ix_interactions_support_questions",
            "created_at",
            "id",
            postgresql_where=sql("is_support AND role = 'user'"),
        ),
    )


class Reflection(Base):
    """light_dreaming's note about one user's day: one per user per WITA date."""

    __tablename__ = "reflections"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    reflection_date: Mapped[date] = mapped_column(Date)
    topics: Mapped[list[str]] = mapped_column(JSONB)
    preferences: Mapped[list[str]] = mapped_column(JSONB)
    open_loops: Mapped[list[str]] = mapped_column(JSONB)
    summary: Mapped[str] = mapped_column(Text)
    interaction_count: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = defaults_to_now()

    __table_args__ = (
        one_of("method", TEXT_METHODS),
        UniqueConstraint("user_id", "reflection_date"),
        Index("ix_reflections_reflection_date", "reflection_date"),
    )


class AgentInsight(Base):
    """deep_dreaming's consolidation of one user's week: one per user per ISO week."""

    __tablename__ = "agent_insights"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    iso_week: Mapped[str] = mapped_column(Text)  # "2026-W48"
    week_start: Mapped[date] = mapped_column(Date)
    topics: Mapped[list[Any]] = mapped_column(JSONB)
    preferences: Mapped[list[str]] = mapped_column(JSONB)
    open_loops: Mapped[list[str]] = mapped_column(JSONB)
    summary: Mapped[str] = mapped_column(Text)
    reflection_count: Mapped[int] = mapped_column(Integer)
    memories_merged: Mapped[int] = mapped_column(Integer, server_default=sql("0"))
    created_at: Mapped[datetime] = defaults_to_now()

    __table_args__ = (UniqueConstraint("user_id", "iso_week"),)


class FaqCandidate(Base):
    """A question users asked support, deduplicated by its normalised text. Not tied
    to a user: it keeps the ids of the messages it came from, not who sent them."""

    __tablename__ = "faq_candidates"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    normalized_text: Mapped[str] = mapped_column(Text, unique=True)
    text: Mapped[str] = mapped_column(Text)  # as first asked
    source_message_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    first_seen_at: Mapped[datetime] = timestamp(nullable=False)
    last_seen_at: Mapped[datetime] = timestamp(nullable=False)
    created_at: Mapped[datetime] = defaults_to_now()
    updated_at: Mapped[datetime] = defaults_to_now()

    __table_args__ = (Index("ix_faq_candidates_last_seen_at", "last_seen_at"),)


class FaqDraft(Base):
    """A draft FAQ entry: one cluster of similar candidates with its best answer.

    Its identity is the cluster's anchor, the earliest candidate in it, so a re-run
    (or a run that adds new questions to the cluster) updates the same row.
    """

    __tablename__ = "faq_drafts"

    id: Mapped[int] = mapped_column(BigInteger, identity(), primary_key=True)
    anchor_candidate_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("faq_candidates.id", ondelete="CASCADE"),
        unique=True,
    )
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    answer_method: Mapped[str | None] = mapped_column(Text)
    # Times the cluster's questions were asked (distinct source messages).
    cluster_size: Mapped[int] = mapped_column(Integer)
    candidate_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    source_message_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    compiled_at: Mapped[datetime] = timestamp(nullable=False)
    created_at: Mapped[datetime] = defaults_to_now()
    updated_at: Mapped[datetime] = defaults_to_now()
    # Set when a later compilation no longer found this cluster.
    retired_at: Mapped[datetime | None] = timestamp()

    __table_args__ = (one_of("answer_method", TEXT_METHODS),)
