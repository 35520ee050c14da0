"""A worker that is up but cannot get the database connections it needs says so in
``schedule_workers``: since when, and the server's reason (the admin page and
``agnt_workers_starved`` read it).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "schedule_workers",
        sa.Column("starved_since", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("schedule_workers", sa.Column("starved_reason", sa.Text()))


def downgrade() -> None:
    op.drop_column("schedule_workers", "starved_reason")
    op.drop_column("schedule_workers", "starved_since")
