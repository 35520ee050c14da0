"""Payments found made twice for one fee, and their refunds: ``duplicate_payments``
holds each extra payment as the intended refund (recorded before Stripe is asked,
under ``refund:{payment_intent}``), and its outcome.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "duplicate_payments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("fee_id", sa.BigInteger(), nullable=False),
        sa.Column("payment_intent", sa.Text(), nullable=False),
        sa.Column("stripe_customer_id", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("stripe_refund_id", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "found_at",
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
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('TO_REFUND', 'REFUNDED', 'REPORTED', 'REFUSED')",
            name=op.f("ck_duplicate_payments_status"),
        ),
        sa.CheckConstraint(
            "amount > 0", name=op.f("ck_duplicate_payments_amount_positive")
        ),
        sa.ForeignKeyConstraint(
            ["fee_id"],
            ["fee_collections.id"],
            name=op.f("fk_duplicate_payments_fee_id_fee_collections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duplicate_payments")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_duplicate_payments_idempotency_key")
        ),
        sa.UniqueConstraint(
            "payment_intent", name=op.f("uq_duplicate_payments_payment_intent")
        ),
    )
    op.create_index("ix_duplicate_payments_fee_id", "duplicate_payments", ["fee_id"])
    op.create_index(
        "ix_duplicate_payments_open",
        "duplicate_payments",
        ["id"],
        postgresql_where=sa.text("status <> 'REFUNDED'"),
    )


def downgrade() -> None:
    op.drop_index("ix_duplicate_payments_open", table_name="duplicate_payments")
    op.drop_index("ix_duplicate_payments_fee_id", table_name="duplicate_payments")
    op.drop_table("duplicate_payments")
