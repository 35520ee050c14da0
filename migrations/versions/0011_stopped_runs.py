"""A run that stopped at a checkpoint (its worker shutting down past the grace
period) is recorded as ``stopped``, apart from one Procrastinate aborted.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_job_runs_status"), "job_runs", type_="check")
    op.create_check_constraint(
        op.f("ck_job_runs_status"),
        "job_runs",
        "status IN ('running', 'succeeded', 'failed', 'aborted', 'stopped')",
    )


def downgrade() -> None:
    op.execute("UPDATE job_runs SET status = 'aborted' WHERE status = 'stopped'")
    op.drop_constraint(op.f("ck_job_runs_status"), "job_runs", type_="check")
    op.create_check_constraint(
        op.f("ck_job_runs_status"),
        "job_runs",
        "status IN ('running', 'succeeded', 'failed', 'aborted')",
    )
