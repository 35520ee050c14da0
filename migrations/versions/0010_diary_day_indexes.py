"""The digests walk one WITA day's diary entries in (time, id) order instead of every
user: an index on each diary table for that walk.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_user_spend_entries_spent_at_id", "user_spend_entries", ["spent_at", "id"]
    )
    op.create_index(
        "ix_nutrition_entries_eaten_at_id", "nutrition_entries", ["eaten_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_nutrition_entries_eaten_at_id", table_name="nutrition_entries")
    op.drop_index("ix_user_spend_entries_spent_at_id", table_name="user_spend_entries")
