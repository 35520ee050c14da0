"""Lifecycle, housekeeping, webhooks, price watchers and health: B2B onboarding
sessions, referral codes, price watchers and their history, webhook endpoints and
deliveries, health-check results and state, the alerts outbox; and an index on
Procrastinate's events for the health monitor's failed-jobs check, and one on
memories' self-reference that deletes from memories need.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FAILED_EVENTS_INDEX = """
CREATE INDEX idx_procrastinate_events_failed_at ON procrastinate_events (at)
WHERE type = 'failed'
"""


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "attempts", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_alerts_idempotency_key")),
    )
    op.create_index(
        "ix_alerts_unsent",
        "alerts",
        ["id"],
        unique=False,
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.create_table(
        "health_check_results",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("check_name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "checked_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('ok', 'failing')", name=op.f("ck_health_check_results_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_check_results")),
    )
    op.create_index(
        "ix_health_check_results_check_name_checked_at",
        "health_check_results",
        ["check_name", "checked_at"],
        unique=False,
    )
    op.create_table(
        "health_check_state",
        sa.Column("check_name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column(
            "since",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "status IN ('ok', 'failing')", name=op.f("ck_health_check_state_status")
        ),
        sa.PrimaryKeyConstraint("check_name", name=op.f("pk_health_check_state")),
    )
    op.create_table(
        "price_watchers",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("marketplace", sa.Text(), nullable=False),
        sa.Column("product_ref", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("target_price", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.Text(), server_default="IDR", nullable=False),
        sa.Column("status", sa.Text(), server_default="ACTIVE", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_price", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "marketplace IN ('shopee', 'tokopedia', 'lazada')",
            name=op.f("ck_price_watchers_marketplace"),
        ),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'PAUSED', 'ENDED')",
            name=op.f("ck_price_watchers_status"),
        ),
        sa.CheckConstraint(
            "target_price > 0", name=op.f("ck_price_watchers_target_price")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_price_watchers_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_watchers")),
    )
    op.create_index(
        "ix_price_watchers_active_due",
        "price_watchers",
        ["marketplace", sa.literal_column("last_checked_at NULLS FIRST"), "id"],
        unique=False,
        postgresql_where=sa.text("status = 'ACTIVE'"),
    )
    op.create_index(
        "ix_price_watchers_user_id", "price_watchers", ["user_id"], unique=False
    )
    op.create_table(
        "referral_codes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("referrer_user_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), server_default="ACTIVE", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redeemed_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'REDEEMED', 'EXPIRED')",
            name=op.f("ck_referral_codes_status"),
        ),
        sa.ForeignKeyConstraint(
            ["redeemed_by_user_id"],
            ["users.id"],
            name=op.f("fk_referral_codes_redeemed_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["referrer_user_id"],
            ["users.id"],
            name=op.f("fk_referral_codes_referrer_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_codes")),
        sa.UniqueConstraint("code", name=op.f("uq_referral_codes_code")),
    )
    op.create_index(
        "ix_referral_codes_active_expiry",
        "referral_codes",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'ACTIVE'"),
    )
    op.create_index(
        "ix_referral_codes_redeemed_by_user_id",
        "referral_codes",
        ["redeemed_by_user_id"],
        unique=False,
    )
    op.create_index(
        "ix_referral_codes_referrer_user_id",
        "referral_codes",
        ["referrer_user_id"],
        unique=False,
    )
    op.create_table(
        "b2b_onboarding_sessions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("venue_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.Text(), server_default="ACTIVE", nullable=False),
        sa.Column("step", sa.Text(), server_default="start", nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_activity_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("abandoned_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'COMPLETED', 'ABANDONED')",
            name=op.f("ck_b2b_onboarding_sessions_status"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_b2b_onboarding_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"],
            ["venues.id"],
            name=op.f("fk_b2b_onboarding_sessions_venue_id_venues"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_b2b_onboarding_sessions")),
    )
    op.create_index(
        "ix_b2b_onboarding_sessions_active_idle",
        "b2b_onboarding_sessions",
        ["last_activity_at"],
        unique=False,
        postgresql_where=sa.text("status = 'ACTIVE'"),
    )
    op.create_index(
        "ix_b2b_onboarding_sessions_uncompleted_expiry",
        "b2b_onboarding_sessions",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("status <> 'COMPLETED'"),
    )
    op.create_index(
        "ix_b2b_onboarding_sessions_user_id",
        "b2b_onboarding_sessions",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "price_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("watcher_id", sa.BigInteger(), nullable=False),
        sa.Column("price", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("tick", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "observed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["watcher_id"],
            ["price_watchers.id"],
            name=op.f("fk_price_history_watcher_id_price_watchers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_history")),
        sa.UniqueConstraint(
            "watcher_id", "tick", name=op.f("uq_price_history_watcher_id_tick")
        ),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("venue_id", sa.BigInteger(), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "dead_count", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["venue_id"],
            ["venues.id"],
            name=op.f("fk_webhook_endpoints_venue_id_venues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(
        "ix_webhook_endpoints_venue_id", "webhook_endpoints", ["venue_id"], unique=False
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("endpoint_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
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
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('PENDING', 'DELIVERED', 'FAILED', 'DEAD')",
            name=op.f("ck_webhook_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint(
            "endpoint_id",
            "event_id",
            name=op.f("uq_webhook_deliveries_endpoint_id_event_id"),
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_retry_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'FAILED'"),
    )
    # Procrastinate's events have no index on time; the failed-jobs check reads the
    # last hour of 'failed' events. Named with Procrastinate's prefix so that
    # autogenerate, which leaves Procrastinate's objects alone, ignores it.
    op.execute(FAILED_EVENTS_INDEX)
    # Core table, but the purge and memory eviction delete from it: its
    # self-reference needs an index or every deleted memory scans the table.
    op.create_index(
        "ix_memories_merged_into_id",
        "memories",
        ["merged_into_id"],
        unique=False,
        postgresql_where=sa.text("merged_into_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_memories_merged_into_id",
        table_name="memories",
        postgresql_where=sa.text("merged_into_id IS NOT NULL"),
    )
    op.execute("DROP INDEX IF EXISTS idx_procrastinate_events_failed_at")
    op.drop_index(
        "ix_webhook_deliveries_retry_due",
        table_name="webhook_deliveries",
        postgresql_where=sa.text("status = 'FAILED'"),
    )
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhook_endpoints_venue_id", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
    op.drop_table("price_history")
    op.drop_index(
        "ix_b2b_onboarding_sessions_user_id", table_name="b2b_onboarding_sessions"
    )
    op.drop_index(
        "ix_b2b_onboarding_sessions_uncompleted_expiry",
        table_name="b2b_onboarding_sessions",
        postgresql_where=sa.text("status <> 'COMPLETED'"),
    )
    op.drop_index(
        "ix_b2b_onboarding_sessions_active_idle",
        table_name="b2b_onboarding_sessions",
        postgresql_where=sa.text("status = 'ACTIVE'"),
    )
    op.drop_table("b2b_onboarding_sessions")
    op.drop_index("ix_referral_codes_referrer_user_id", table_name="referral_codes")
    op.drop_index("ix_referral_codes_redeemed_by_user_id", table_name="referral_codes")
    op.drop_index(
        "ix_referral_codes_active_expiry",
        table_name="referral_codes",
        postgresql_where=sa.text("status = 'ACTIVE'"),
    )
    op.drop_table("referral_codes")
    op.drop_index("ix_price_watchers_user_id", table_name="price_watchers")
    op.drop_index(
        "ix_price_watchers_active_due",
        table_name="price_watchers",
        postgresql_where=sa.text("status = 'ACTIVE'"),
    )
    op.drop_table("price_watchers")
    op.drop_table("health_check_state")
    op.drop_index(
        "ix_health_check_results_check_name_checked_at",
        table_name="health_check_results",
    )
    op.drop_table("health_check_results")
    op.drop_index(
        "ix_alerts_unsent",
        table_name="alerts",
        postgresql_where=sa.text("sent_at IS NULL"),
    )
    op.drop_table("alerts")
