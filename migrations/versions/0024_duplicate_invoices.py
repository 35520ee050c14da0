"""Every Stripe object found made twice for one of our rows, not only payments:
``duplicate_payments`` gains ``kind`` (payment, invoice, invoice_item), ``action``
(what makes it right: refund, void, delete), ``stripe_object`` (the extra object's
id) and the row it duplicates (``invoice_id``, ``usage_batch_id`` beside
``fee_id``); statuses TO_VOID/VOIDED and TO_DELETE/DELETED join TO_REFUND/REFUNDED.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "duplicate_payments"
STATUSES = (
    "'TO_REFUND', 'REFUNDED', 'TO_VOID', 'VOIDED', 'TO_DELETE', 'DELETED', "
    "'REPORTED', 'REFUSED'"
)
OLD_STATUSES = "'TO_REFUND', 'REFUNDED', 'REPORTED', 'REFUSED'"
FOREIGN_KEYS = (("invoice_id", "monthly_invoices"), ("usage_batch_id", "usage_batches"))


def _open_index(where: str) -> None:
    """The rows not made right yet: what the health check counts."""
    op.drop_index("ix_duplicate_payments_open", table_name=TABLE)
    op.create_index(
        "ix_duplicate_payments_open", TABLE, ["id"], postgresql_where=sa.text(where)
    )


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("kind", sa.Text(), server_default="payment"))
    op.add_column(TABLE, sa.Column("action", sa.Text(), server_default="refund"))
    op.add_column(TABLE, sa.Column("stripe_object", sa.Text()))
    op.add_column(TABLE, sa.Column("invoice_id", sa.BigInteger()))
    op.add_column(TABLE, sa.Column("usage_batch_id", sa.BigInteger()))
    op.execute(f"UPDATE {TABLE} SET stripe_object = payment_intent")
    for column in ("kind", "action", "stripe_object"):
        op.alter_column(TABLE, column, nullable=False, server_default=None)
    op.alter_column(TABLE, "fee_id", nullable=True)
    op.alter_column(TABLE, "payment_intent", nullable=True)
    for column, table in FOREIGN_KEYS:
        op.create_foreign_key(
            op.f(f"fk_duplicate_payments_{column}_{table}"),
            TABLE,
            table,
            [column],
            ["id"],
        )
    op.create_unique_constraint(
        op.f("uq_duplicate_payments_stripe_object"), TABLE, ["stripe_object"]
    )
    op.drop_constraint(op.f("ck_duplicate_payments_status"), TABLE)
    op.create_check_constraint(
        op.f("ck_duplicate_payments_status"), TABLE, f"status IN ({STATUSES})"
    )
    op.create_check_constraint(
        op.f("ck_duplicate_payments_kind"),
        TABLE,
        "kind IN ('payment', 'invoice', 'invoice_item')",
    )
    op.create_check_constraint(
        op.f("ck_duplicate_payments_action"),
        TABLE,
        "action IN ('refund', 'void', 'delete')",
    )
    op.create_check_constraint(
        op.f("ck_duplicate_payments_duplicates_one_row"),
        TABLE,
        "(kind = 'payment' AND fee_id IS NOT NULL)"
        " OR (kind = 'invoice' AND invoice_id IS NOT NULL)"
        " OR (kind = 'invoice_item' AND usage_batch_id IS NOT NULL)",
    )
    # An extra invoice may be for nothing (a paid one then has no payment to
    # refund and is only reported); a refund of nothing Stripe refuses.
    op.drop_constraint(op.f("ck_duplicate_payments_amount_positive"), TABLE)
    op.create_check_constraint(
        op.f("ck_duplicate_payments_amount_not_negative"), TABLE, "amount >= 0"
    )
    _open_index("status NOT IN ('REFUNDED', 'VOIDED', 'DELETED')")


def downgrade() -> None:
    # Only payments had a place before; the other rows go with their columns.
    op.execute(f"DELETE FROM {TABLE} WHERE kind <> 'payment'")
    _open_index("status <> 'REFUNDED'")
    op.drop_constraint(op.f("ck_duplicate_payments_amount_not_negative"), TABLE)
    op.create_check_constraint(
        op.f("ck_duplicate_payments_amount_positive"), TABLE, "amount > 0"
    )
    for name in ("duplicates_one_row", "action", "kind", "status"):
        op.drop_constraint(op.f(f"ck_duplicate_payments_{name}"), TABLE)
    op.create_check_constraint(
        op.f("ck_duplicate_payments_status"), TABLE, f"status IN ({OLD_STATUSES})"
    )
    op.drop_constraint(op.f("uq_duplicate_payments_stripe_object"), TABLE)
    for column, table in FOREIGN_KEYS:
        op.drop_constraint(op.f(f"fk_duplicate_payments_{column}_{table}"), TABLE)
    op.alter_column(TABLE, "payment_intent", nullable=False)
    op.alter_column(TABLE, "fee_id", nullable=False)
    for column in ("usage_batch_id", "invoice_id", "stripe_object", "action", "kind"):
        op.drop_column(TABLE, column)
