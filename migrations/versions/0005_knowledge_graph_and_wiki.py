"""What the heavy jobs in cron/ read and write: conversation messages (interactions),
reflections and agent insights (dreaming), FAQ candidates and drafts, the knowledge
graph's entities and edges, and the fleet wiki pages with their reconciliation cursor.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "faq_candidates",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("normalized_text", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "source_message_ids", postgresql.ARRAY(sa.BigInteger()), nullable=False
        ),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faq_candidates")),
        sa.UniqueConstraint(
            "normalized_text", name=op.f("uq_faq_candidates_normalized_text")
        ),
    )
    op.create_index(
        "ix_faq_candidates_last_seen_at",
        "faq_candidates",
        ["last_seen_at"],
        unique=False,
    )
    op.create_table(
        "fleet_wiki_cursor",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "last_delta_id",
            sa.BigInteger(),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_fleet_wiki_cursor_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fleet_wiki_cursor")),
    )
    op.create_table(
        "fleet_wiki_pages",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_delta_id", sa.BigInteger(), nullable=False),
        sa.Column("last_agent_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fleet_wiki_pages")),
        sa.UniqueConstraint("slug", name=op.f("uq_fleet_wiki_pages_slug")),
    )
    op.create_table(
        "agent_insights",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("iso_week", sa.Text(), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("topics", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "preferences", postgresql.JSONB(astext_type=sa.Text()), nullable=False
        ),
        sa.Column(
            "open_loops", postgresql.JSONB(astext_type=sa.Text()), nullable=False
        ),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("reflection_count", sa.Integer(), nullable=False),
        sa.Column(
            "memories_merged", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_agent_insights_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_insights")),
        sa.UniqueConstraint(
            "user_id", "iso_week", name=op.f("uq_agent_insights_user_id_iso_week")
        ),
    )
    op.create_table(
        "faq_drafts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("anchor_candidate_id", sa.BigInteger(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answer_method", sa.Text(), nullable=True),
        sa.Column("cluster_size", sa.Integer(), nullable=False),
        sa.Column("candidate_ids", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column(
            "source_message_ids", postgresql.ARRAY(sa.BigInteger()), nullable=False
        ),
        sa.Column("compiled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "answer_method IN ('extractive', 'llm')",
            name=op.f("ck_faq_drafts_answer_method"),
        ),
        sa.ForeignKeyConstraint(
            ["anchor_candidate_id"],
            ["faq_candidates.id"],
            name=op.f("fk_faq_drafts_anchor_candidate_id_faq_candidates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faq_drafts")),
        sa.UniqueConstraint(
            "anchor_candidate_id", name=op.f("uq_faq_drafts_anchor_candidate_id")
        ),
    )
    op.create_table(
        "interactions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("conversation_id", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "is_support", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('user', 'agent')", name=op.f("ck_interactions_role")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_interactions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interactions")),
    )
    op.create_index(
        "ix_interactions_conversation_id_id",
        "interactions",
        ["conversation_id", "id"],
        unique=False,
    )
    op.create_index(
        "ix_interactions_created_at", "interactions", ["created_at"], unique=False
    )
    op.create_index(
        "ix_interactions_support_questions",
        "interactions",
        ["created_at", "id"],
        unique=False,
        postgresql_where=sa.text("is_support AND role = 'user'"),
    )
    op.create_index(
        "ix_interactions_user_id_created_at",
        "interactions",
        ["user_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "reflections",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("reflection_date", sa.Date(), nullable=False),
        sa.Column("topics", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "preferences", postgresql.JSONB(astext_type=sa.Text()), nullable=False
        ),
        sa.Column(
            "open_loops", postgresql.JSONB(astext_type=sa.Text()), nullable=False
        ),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("interaction_count", sa.Integer(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "method IN ('extractive', 'llm')", name=op.f("ck_reflections_method")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_reflections_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reflections")),
        sa.UniqueConstraint(
            "user_id",
            "reflection_date",
            name=op.f("uq_reflections_user_id_reflection_date"),
        ),
    )
    op.create_index(
        "ix_reflections_reflection_date",
        "reflections",
        ["reflection_date"],
        unique=False,
    )
    op.create_table(
        "entities",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), server_default="manual", nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("venue_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "source IN ('derived', 'manual')", name=op.f("ck_entities_source")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_entities_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"],
            ["venues.id"],
            name=op.f("fk_entities_venue_id_venues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entities")),
        sa.UniqueConstraint("kind", "key", name=op.f("uq_entities_kind_key")),
    )
    op.create_index(
        "ix_entities_user_id_kind", "entities", ["user_id", "kind"], unique=False
    )
    op.create_index(
        "ix_entities_venue_id_kind", "entities", ["venue_id", "kind"], unique=False
    )
    op.create_table(
        "entity_edges",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("src_id", sa.BigInteger(), nullable=False),
        sa.Column("dst_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), server_default="manual", nullable=False),
        sa.Column("weight", sa.Double(), server_default="1", nullable=False),
        sa.Column("meta", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "source IN ('derived', 'manual')", name=op.f("ck_entity_edges_source")
        ),
        sa.ForeignKeyConstraint(
            ["dst_id"],
            ["entities.id"],
            name=op.f("fk_entity_edges_dst_id_entities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["src_id"],
            ["entities.id"],
            name=op.f("fk_entity_edges_src_id_entities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entity_edges")),
        sa.UniqueConstraint(
            "src_id",
            "dst_id",
            "kind",
            "source",
            name=op.f("uq_entity_edges_src_id_dst_id_kind_source"),
        ),
    )
    op.create_index("ix_entity_edges_dst_id", "entity_edges", ["dst_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_entity_edges_dst_id", table_name="entity_edges")
    op.drop_table("entity_edges")
    op.drop_index("ix_entities_venue_id_kind", table_name="entities")
    op.drop_index("ix_entities_user_id_kind", table_name="entities")
    op.drop_table("entities")
    op.drop_index("ix_reflections_reflection_date", table_name="reflections")
    op.drop_table("reflections")
    op.drop_index("ix_interactions_user_id_created_at", table_name="interactions")
    op.drop_index(
        "ix_interactions_support_questions",
        table_name="interactions",
        postgresql_where=sa.text("is_support AND role = 'user'"),
    )
    op.drop_index("ix_interactions_created_at", table_name="interactions")
    op.drop_index("ix_interactions_conversation_id_id", table_name="interactions")
    op.drop_table("interactions")
    op.drop_table("faq_drafts")
    op.drop_table("agent_insights")
    op.drop_table("fleet_wiki_pages")
    op.drop_table("fleet_wiki_cursor")
    op.drop_index("ix_faq_candidates_last_seen_at", table_name="faq_candidates")
    op.drop_table("faq_candidates")
