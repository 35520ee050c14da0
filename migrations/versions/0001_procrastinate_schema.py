"""Procrastinate's queue schema, from the installed package.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

from agnt_jobs.db import procrastinate_schema

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    procrastinate_schema.apply_baseline()


def downgrade() -> None:
    procrastinate_schema.drop_all()
