"""The claim looks at other jobs only for a job with a lock.

``agnt_claim_jobs`` (revision 0027) skipped a job whose lock another job holds or
waits ahead for with a ``NOT EXISTS`` that Postgres turns into an anti-join; for
a job without a lock the join finds nothing, but the plan still read every
waiting and running job once per candidate when the table's statistics were
older than its rows (a batch deferred since the last ANALYZE: a nested loop over
the whole ``(id, lock)`` index). With 3,000 jobs just deferred that was 1 ms a
claim alone, and thirty workers' claims at once, each reading past the rows the
others held, took seconds each on two cores. The test is now ``lock IS NULL OR
NOT EXISTS (...)``: a subquery run only for a job with a lock, on the lock
indexes. Which jobs are taken, and in what order, is unchanged
(``tests/integration/test_batch_claim.py`` holds it against Procrastinate's own
fetch).

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANTI_JOIN = """
          AND NOT EXISTS (
              SELECT 1 FROM procrastinate_jobs AS other
              WHERE jobs.lock IS NOT NULL
                AND other.lock = jobs.lock
"""
ONLY_WITH_A_LOCK = """
          AND (jobs.lock IS NULL OR NOT EXISTS (
              SELECT 1 FROM procrastinate_jobs AS other
              WHERE other.lock = jobs.lock
"""
ANTI_JOIN_END = """
                                  AND other.id < jobs.id))))
          )
"""
ONLY_WITH_A_LOCK_END = """
                                  AND other.id < jobs.id))))
          ))
"""


def _definition_of_0027() -> str:
    """The function as revision 0027 created it, replacing the one there is."""
    path = Path(__file__).with_name("0027_batch_claim.py")
    spec = importlib.util.spec_from_file_location("_revision_0027", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.CLAIM_JOBS).replace(
        "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1
    )


def _changed(definition: str) -> str:
    for old, new in (
        (ANTI_JOIN, ONLY_WITH_A_LOCK),
        (ANTI_JOIN_END, ONLY_WITH_A_LOCK_END),
    ):
        assert definition.count(old) == 1, old
        definition = definition.replace(old, new)
    return definition


def upgrade() -> None:
    op.execute(_changed(_definition_of_0027()))


def downgrade() -> None:
    op.execute(_definition_of_0027())
