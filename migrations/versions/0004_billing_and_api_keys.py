"""Billing and API keys: monthly invoices, fee collections, the append-only ledger
(a trigger refuses UPDATE and DELETE, except a user purge's user_id -> NULL), API keys
with their daily usage history, metered usage events and the usage batches that bill
them to Stripe.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The ledger is the truth for money: an entry is never changed or removed. The one
# change allowed is the ON DELETE SET NULL of user_id when a user is purged.
APPEND_ONLY_FUNCTION = """
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.user_id IS NULL
       AND to_jsonb(NEW) - 'user_id' = to_jsonb(OLD) - 'user_id' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'ledger_entries is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "usage_batches",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("stripe_customer_id", sa.Text(), nullable=False),
        sa.Column("cutoff", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column(
            "event_count", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "quantity", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.Column(
            "amount", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("currency", sa.Text(), server_default="IDR", nullable=False),
        sa.Column("status", sa.Text(), server_default="PENDING", nullable=False),
        sa.Column("stripe_invoice_item_id", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("billed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('PENDING', 'BILLED')", name=op.f("ck_usage_batches_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_batches")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_usage_batches_idempotency_key")
        ),
        sa.UniqueConstraint(
            "stripe_invoice_item_id",
            name=op.f("uq_usage_batches_stripe_invoice_item_id"),
        ),
    )
    op.create_index(
        "ix_usage_batches_pending",
        "usage_batches",
        ["id"],
        unique=False,
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("key_prefix", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("stripe_customer_id", sa.Text(), nullable=True),
        sa.Column(
            "queries_today", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("last_reset_on", sa.Date(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "queries_today >= 0", name=op.f("ck_api_keys_queries_today")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_api_keys_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(
        "ix_api_keys_stripe_customer_id",
        "api_keys",
        ["stripe_customer_id"],
        unique=False,
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"], unique=False)
    op.create_table(
        "api_key_daily_usage",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("api_key_id", sa.BigInteger(), nullable=False),
        sa.Column("usage_date", sa.Date(), nullable=False),
        sa.Column("queries", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_daily_usage_api_key_id_api_keys"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key_daily_usage")),
        sa.UniqueConstraint(
            "api_key_id",
            "usage_date",
            name=op.f("uq_api_key_daily_usage_api_key_id_usage_date"),
        ),
    )
    op.create_index(
        "ix_api_key_daily_usage_usage_date",
        "api_key_daily_usage",
        ["usage_date"],
        unique=False,
    )
    op.create_table(
        "api_key_usage_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("api_key_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "quantity", sa.Integer(), server_default=sa.text("1"), nullable=False
        ),
        sa.Column("usage_batch_id", sa.BigInteger(), nullable=True),
        sa.Column("billed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "quantity > 0", name=op.f("ck_api_key_usage_events_quantity_positive")
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_usage_events_api_key_id_api_keys"),
        ),
        sa.ForeignKeyConstraint(
            ["usage_batch_id"],
            ["usage_batches.id"],
            name=op.f("fk_api_key_usage_events_usage_batch_id_usage_batches"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key_usage_events")),
    )
    op.create_index(
        "ix_api_key_usage_events_unbatched",
        "api_key_usage_events",
        ["api_key_id", "occurred_at"],
        unique=False,
        postgresql_where=sa.text("usage_batch_id IS NULL"),
    )
    op.create_index(
        "ix_api_key_usage_events_unmarked",
        "api_key_usage_events",
        ["usage_batch_id"],
        unique=False,
        postgresql_where=sa.text("usage_batch_id IS NOT NULL AND billed_at IS NULL"),
    )
    op.create_table(
        "monthly_invoices",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("venue_id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.Text(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stripe_customer_id", sa.Text(), nullable=False),
        sa.Column("stripe_subscription_id", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="PENDING", nullable=False),
        sa.Column("stripe_invoice_id", sa.Text(), nullable=True),
        sa.Column("amount_due", sa.BigInteger(), nullable=True),
        sa.Column("amount_paid", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.Text(), server_default="IDR", nullable=False),
        sa.Column(
            "payment_attempts",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('PENDING', 'OPEN', 'PAID', 'VOID', 'UNCOLLECTIBLE')",
            name=op.f("ck_monthly_invoices_status"),
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"],
            ["venues.id"],
            name=op.f("fk_monthly_invoices_venue_id_venues"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monthly_invoices")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_monthly_invoices_idempotency_key")
        ),
        sa.UniqueConstraint(
            "stripe_invoice_id", name=op.f("uq_monthly_invoices_stripe_invoice_id")
        ),
        sa.UniqueConstraint(
            "venue_id", "month", name=op.f("uq_monthly_invoices_venue_id_month")
        ),
    )
    op.create_index(
        "ix_monthly_invoices_unsettled",
        "monthly_invoices",
        ["month"],
        unique=False,
        postgresql_where=sa.text("status IN ('PENDING', 'OPEN')"),
    )
    op.create_table(
        "fee_collections",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("venue_id", sa.BigInteger(), nullable=False),
        sa.Column("booking_id", sa.BigInteger(), nullable=True),
        sa.Column("stripe_customer_id", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), server_default="IDR", nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="PENDING", nullable=False),
        sa.Column(
            "attempts", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "next_retry_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("stripe_payment_intent_id", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
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
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('PENDING', 'FAILED', 'PAID', 'UNCOLLECTIBLE', 'REFUNDED')",
            name=op.f("ck_fee_collections_status"),
        ),
        sa.CheckConstraint(
            "amount > 0", name=op.f("ck_fee_collections_amount_positive")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_fee_collections_attempts")),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_fee_collections_booking_id_bookings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"], ["venues.id"], name=op.f("fk_fee_collections_venue_id_venues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fee_collections")),
    )
    op.create_index(
        "ix_fee_collections_booking_id", "fee_collections", ["booking_id"], unique=False
    )
    op.create_index(
        "ix_fee_collections_due",
        "fee_collections",
        ["next_retry_at", "id"],
        unique=False,
        postgresql_where=sa.text("status IN ('PENDING', 'FAILED')"),
    )
    op.create_index(
        "ix_fee_collections_updated_at", "fee_collections", ["updated_at"], unique=False
    )
    op.create_index(
        "ix_fee_collections_venue_id", "fee_collections", ["venue_id"], unique=False
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("entry_type", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), server_default="IDR", nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("venue_id", sa.BigInteger(), nullable=True),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("stripe_customer_id", sa.Text(), nullable=True),
        sa.Column("fee_id", sa.BigInteger(), nullable=True),
        sa.Column("invoice_id", sa.BigInteger(), nullable=True),
        sa.Column("usage_batch_id", sa.BigInteger(), nullable=True),
        sa.Column("stripe_reference", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "entry_type IN ('charge', 'payment', 'refund', 'fee', 'usage')",
            name=op.f("ck_ledger_entries_entry_type"),
        ),
        sa.CheckConstraint(
            "amount > 0", name=op.f("ck_ledger_entries_amount_positive")
        ),
        sa.ForeignKeyConstraint(
            ["fee_id"],
            ["fee_collections.id"],
            name=op.f("fk_ledger_entries_fee_id_fee_collections"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["monthly_invoices.id"],
            name=op.f("fk_ledger_entries_invoice_id_monthly_invoices"),
        ),
        sa.ForeignKeyConstraint(
            ["usage_batch_id"],
            ["usage_batches.id"],
            name=op.f("fk_ledger_entries_usage_batch_id_usage_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_ledger_entries_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["venue_id"], ["venues.id"], name=op.f("fk_ledger_entries_venue_id_venues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_ledger_entries_idempotency_key")
        ),
    )
    op.create_index(
        "ix_ledger_entries_created_at", "ledger_entries", ["created_at"], unique=False
    )
    op.create_index(
        "ix_ledger_entries_fee_id",
        "ledger_entries",
        ["fee_id"],
        unique=False,
        postgresql_where=sa.text("fee_id IS NOT NULL"),
    )
    op.create_index(
        "ix_ledger_entries_invoice_id",
        "ledger_entries",
        ["invoice_id"],
        unique=False,
        postgresql_where=sa.text("invoice_id IS NOT NULL"),
    )
    op.create_index(
        "ix_ledger_entries_usage_batch_id",
        "ledger_entries",
        ["usage_batch_id"],
        unique=False,
        postgresql_where=sa.text("usage_batch_id IS NOT NULL"),
    )
    op.create_index(
        "ix_ledger_entries_user_id", "ledger_entries", ["user_id"], unique=False
    )
    op.create_index(
        "ix_ledger_entries_venue_id", "ledger_entries", ["venue_id"], unique=False
    )
    op.execute(APPEND_ONLY_FUNCTION)
    op.execute(
        "CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE "
        "ON ledger_entries FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER ledger_entries_append_only ON ledger_entries")
    op.execute("DROP FUNCTION ledger_entries_append_only()")
    op.drop_index("ix_ledger_entries_venue_id", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_user_id", table_name="ledger_entries")
    op.drop_index(
        "ix_ledger_entries_usage_batch_id",
        table_name="ledger_entries",
        postgresql_where=sa.text("usage_batch_id IS NOT NULL"),
    )
    op.drop_index(
        "ix_ledger_entries_invoice_id",
        table_name="ledger_entries",
        postgresql_where=sa.text("invoice_id IS NOT NULL"),
    )
    op.drop_index(
        "ix_ledger_entries_fee_id",
        table_name="ledger_entries",
        postgresql_where=sa.text("fee_id IS NOT NULL"),
    )
    op.drop_index("ix_ledger_entries_created_at", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_index("ix_fee_collections_venue_id", table_name="fee_collections")
    op.drop_index("ix_fee_collections_updated_at", table_name="fee_collections")
    op.drop_index(
        "ix_fee_collections_due",
        table_name="fee_collections",
        postgresql_where=sa.text("status IN ('PENDING', 'FAILED')"),
    )
    op.drop_index("ix_fee_collections_booking_id", table_name="fee_collections")
    op.drop_table("fee_collections")
    op.drop_index(
        "ix_monthly_invoices_unsettled",
        table_name="monthly_invoices",
        postgresql_where=sa.text("status IN ('PENDING', 'OPEN')"),
    )
    op.drop_table("monthly_invoices")
    op.drop_index(
        "ix_api_key_usage_events_unmarked",
        table_name="api_key_usage_events",
        postgresql_where=sa.text("usage_batch_id IS NOT NULL AND billed_at IS NULL"),
    )
    op.drop_index(
        "ix_api_key_usage_events_unbatched",
        table_name="api_key_usage_events",
        postgresql_where=sa.text("usage_batch_id IS NULL"),
    )
    op.drop_table("api_key_usage_events")
    op.drop_index("ix_api_key_daily_usage_usage_date", table_name="api_key_daily_usage")
    op.drop_table("api_key_daily_usage")
    op.drop_index("ix_api_keys_user_id", table_name="api_keys")
    op.drop_index("ix_api_keys_stripe_customer_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index(
        "ix_usage_batches_pending",
        table_name="usage_batches",
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.drop_table("usage_batches")
