"""Core domain shared by every job family: users, venues, bookings, subscriptions,
the send queue, the dead-letter queue, the error log, memories and the fleet delta log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("error_class", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "attempts", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint(
            "source", "source_id", name=op.f("uq_dead_letters_source_source_id")
        ),
    )
    op.create_index(
        "ix_dead_letters_created_at", "dead_letters", ["created_at"], unique=False
    )
    op.create_index(
        "ix_dead_letters_resolved_at",
        "dead_letters",
        ["resolved_at"],
        unique=False,
        postgresql_where=sa.text("resolved_at IS NOT NULL"),
    )
    op.create_table(
        "error_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("level", sa.Text(), server_default="ERROR", nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("context", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "level IN ('WARNING', 'ERROR', 'CRITICAL')", name=op.f("ck_error_log_level")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_error_log")),
    )
    op.create_index(
        "ix_error_log_created_at", "error_log", ["created_at"], unique=False
    )
    op.create_table(
        "fleet_delta_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("agent_id", sa.Text(), nullable=False),
        sa.Column("page_slug", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("meta", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "action IN ('create', 'update', 'retire')",
            name=op.f("ck_fleet_delta_log_action"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fleet_delta_log")),
    )
    op.create_index(
        "ix_fleet_delta_log_created_at", "fleet_delta_log", ["created_at"], unique=False
    )
    op.create_table(
        "fleet_delta_log_archive",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agent_id", sa.Text(), nullable=False),
        sa.Column("page_slug", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("meta", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "archived_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "action IN ('create', 'update', 'retire')",
            name=op.f("ck_fleet_delta_log_archive_action"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fleet_delta_log_archive")),
    )
    op.create_index(
        "ix_fleet_delta_log_archive_created_at",
        "fleet_delta_log_archive",
        ["created_at"],
        unique=False,
    )
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("channel_address", sa.Text(), nullable=True),
        sa.Column("locale", sa.Text(), server_default="id", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_active_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "notifications_opt_in",
            sa.Boolean(),
            server_default=sa.text("true"),
            nullable=False,
        ),
        sa.Column(
            "marketing_opt_in",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "channel IN ('whatsapp', 'telegram', 'web', 'email')",
            name=op.f("ck_users_channel"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_index(
        "ix_users_deleted_at",
        "users",
        ["deleted_at"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
    )
    op.create_index(
        "ix_users_last_active_at", "users", ["last_active_at"], unique=False
    )
    op.create_table(
        "memories",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), server_default="fact", nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column(
            "pinned", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_accessed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("merged_into_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["memories.id"],
            name=op.f("fk_memories_merged_into_id_memories"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_memories_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memories")),
    )
    op.create_index(
        "ix_memories_evictable",
        "memories",
        [sa.literal_column("coalesce(last_accessed_at, created_at)")],
        unique=False,
        postgresql_where=sa.text("NOT pinned"),
    )
    op.create_index("ix_memories_user_id", "memories", ["user_id"], unique=False)
    op.create_table(
        "send_queue",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="PENDING", nullable=False),
        sa.Column(
            "attempts", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("gateway_message_id", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('PENDING', 'SENT', 'FAILED', 'DEAD')",
            name=op.f("ck_send_queue_status"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_send_queue_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_queue")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_send_queue_idempotency_key")
        ),
    )
    op.create_index(
        "ix_send_queue_due",
        "send_queue",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('PENDING', 'FAILED')"),
    )
    op.create_index("ix_send_queue_user_id", "send_queue", ["user_id"], unique=False)
    op.create_table(
        "venues",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("owner_user_id", sa.BigInteger(), nullable=True),
        sa.Column("agent_endpoint", sa.Text(), nullable=True),
        sa.Column(
            "is_claimed", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "is_active", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_user_id"],
            ["users.id"],
            name=op.f("fk_venues_owner_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_venues")),
    )
    op.create_index(
        "ix_venues_owner_user_id", "venues", ["owner_user_id"], unique=False
    )
    op.create_table(
        "bookings",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("venue_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), server_default="REQUESTED", nullable=False),
        sa.Column("slot_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slot_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "party_size", sa.Integer(), server_default=sa.text("2"), nullable=False
        ),
        sa.Column("guest_name", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "status_changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "auto_confirmed",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
        ),
        sa.Column("cancelled_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('REQUESTED', 'PENDING_VENUE', 'CONFIRMED', 'DECLINED', 'COMPLETED', 'CANCELLED')",
            name=op.f("ck_bookings_status"),
        ),
        sa.CheckConstraint("party_size > 0", name=op.f("ck_bookings_party_size")),
        sa.CheckConstraint(
            "slot_end > slot_start", name=op.f("ck_bookings_slot_order")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_bookings_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"], ["venues.id"], name=op.f("fk_bookings_venue_id_venues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
    )
    op.create_index(
        "ix_bookings_status_slot_end", "bookings", ["status", "slot_end"], unique=False
    )
    op.create_index(
        "ix_bookings_status_slot_start",
        "bookings",
        ["status", "slot_start"],
        unique=False,
    )
    op.create_index(
        "ix_bookings_status_status_changed_at",
        "bookings",
        ["status", "status_changed_at"],
        unique=False,
    )
    op.create_index("ix_bookings_user_id", "bookings", ["user_id"], unique=False)
    op.create_index(
        "ix_bookings_venue_id_slot_start",
        "bookings",
        ["venue_id", "slot_start"],
        unique=False,
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("venue_id", sa.BigInteger(), nullable=False),
        sa.Column("stripe_customer_id", sa.Text(), nullable=False),
        sa.Column("stripe_subscription_id", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused')",
            name=op.f("ck_subscriptions_status"),
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"], ["venues.id"], name=op.f("fk_subscriptions_venue_id_venues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint(
            "stripe_subscription_id",
            name=op.f("uq_subscriptions_stripe_subscription_id"),
        ),
    )
    op.create_index(
        "ix_subscriptions_venue_id", "subscriptions", ["venue_id"], unique=False
    )
    op.create_index(
        "uq_subscriptions_live_venue_id",
        "subscriptions",
        ["venue_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('trialing', 'active', 'past_due')"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_subscriptions_live_venue_id",
        table_name="subscriptions",
        postgresql_where=sa.text("status IN ('trialing', 'active', 'past_due')"),
    )
    op.drop_index("ix_subscriptions_venue_id", table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_index("ix_bookings_venue_id_slot_start", table_name="bookings")
    op.drop_index("ix_bookings_user_id", table_name="bookings")
    op.drop_index("ix_bookings_status_status_changed_at", table_name="bookings")
    op.drop_index("ix_bookings_status_slot_start", table_name="bookings")
    op.drop_index("ix_bookings_status_slot_end", table_name="bookings")
    op.drop_table("bookings")
    op.drop_index("ix_venues_owner_user_id", table_name="venues")
    op.drop_table("venues")
    op.drop_index("ix_send_queue_user_id", table_name="send_queue")
    op.drop_index(
        "ix_send_queue_due",
        table_name="send_queue",
        postgresql_where=sa.text("status IN ('PENDING', 'FAILED')"),
    )
    op.drop_table("send_queue")
    op.drop_index("ix_memories_user_id", table_name="memories")
    op.drop_index(
        "ix_memories_evictable",
        table_name="memories",
        postgresql_where=sa.text("NOT pinned"),
    )
    op.drop_table("memories")
    op.drop_index("ix_users_last_active_at", table_name="users")
    op.drop_index(
        "ix_users_deleted_at",
        table_name="users",
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
    )
    op.drop_table("users")
    op.drop_index(
        "ix_fleet_delta_log_archive_created_at", table_name="fleet_delta_log_archive"
    )
    op.drop_table("fleet_delta_log_archive")
    op.drop_index("ix_fleet_delta_log_created_at", table_name="fleet_delta_log")
    op.drop_table("fleet_delta_log")
    op.drop_index("ix_error_log_created_at", table_name="error_log")
    op.drop_table("error_log")
    op.drop_index(
        "ix_dead_letters_resolved_at",
        table_name="dead_letters",
        postgresql_where=sa.text("resolved_at IS NOT NULL"),
    )
    op.drop_index("ix_dead_letters_created_at", table_name="dead_letters")
    op.drop_table("dead_letters")
