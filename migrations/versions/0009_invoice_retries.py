"""Monthly invoices are retried: ``next_attempt_at`` says when an invoice whose
creation failed or whose payment was declined is due for another try
(retry_pending_fees walks them every 30 minutes).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "monthly_invoices",
        sa.Column("next_attempt_at", postgresql.TIMESTAMP(timezone=True)),
    )
    op.create_index(
        "ix_monthly_invoices_retry_due",
        "monthly_invoices",
        ["next_attempt_at", "id"],
        postgresql_where=sa.text("status IN ('PENDING', 'OPEN')"),
    )


def downgrade() -> None:
    op.drop_index("ix_monthly_invoices_retry_due", table_name="monthly_invoices")
    op.drop_column("monthly_invoices", "next_attempt_at")
