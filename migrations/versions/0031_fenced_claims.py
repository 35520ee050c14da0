"""A claim the worker gave up on takes nothing, however late it reaches the server.

A worker that gets no answer to a claim within the query deadline does not know
whether the server ran it: through PgBouncer the statement may still wait for a
server connection, or run there, after the worker's socket is gone, and commit
later. The worker numbers its claims; ``procrastinate_workers.agnt_claims_given_up_through``
is the highest number it gave up on. ``agnt_fenced_claim(queues, worker_id, n,
claim)`` takes the jobs ``agnt_claim_jobs`` would, unless ``claim`` is at most that
number. It reads the number under the worker's row held ``FOR KEY SHARE`` (what the
claim's foreign key takes in any case, so heartbeats are not held up) until it
commits. The give-up takes the row ``FOR UPDATE SKIP LOCKED`` (worker.sql,
``give_up_claims``): it succeeds only when no claim is past that read and not
committed, and a claim that reads after it sees its number. Once a give-up
succeeds, the give-back that follows sees all that the given-up claims took,
and nothing can be claimed under a given-up number afterwards.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "procrastinate_workers",
        sa.Column(
            "agnt_claims_given_up_through",
            sa.BigInteger(),
            nullable=False,
            server_default="0",
        ),
    )
    op.execute(
        """
CREATE FUNCTION agnt_fenced_claim(
    target_queue_names character varying[], p_worker_id bigint, n integer,
    p_claim bigint
) RETURNS SETOF procrastinate_jobs
LANGUAGE plpgsql AS $fn$
-- The jobs agnt_claim_jobs takes, unless the worker gave this claim (numbered
-- p_claim) up already (agnt_claims_given_up_through). The worker's row stays
-- held FOR KEY SHARE, what the claim's foreign key takes in any case, until the
-- claim commits: a give-up (give_up_claims, FOR UPDATE SKIP LOCKED) cannot go
-- through while the claim is under way.
DECLARE
    _given_up bigint;
BEGIN
    SELECT agnt_claims_given_up_through INTO _given_up
    FROM procrastinate_workers WHERE id = p_worker_id
    FOR KEY SHARE;
    IF _given_up >= p_claim THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM agnt_claim_jobs(target_queue_names, p_worker_id, n);
END
$fn$
"""
    )


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION agnt_fenced_claim(character varying[], bigint, integer, bigint)"
    )
    op.drop_column("procrastinate_workers", "agnt_claims_given_up_through")
