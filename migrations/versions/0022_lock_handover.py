"""Waiting jobs found by their lock: when a job holding a lock ends, the worker that
ends it looks for a job waiting on the same lock (to wake the workers for it at
once) through this index, not through every waiting job.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX agnt_jobs_waiting_lock_idx ON procrastinate_jobs (lock) "
        "WHERE status = 'todo' AND lock IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX agnt_jobs_waiting_lock_idx")
