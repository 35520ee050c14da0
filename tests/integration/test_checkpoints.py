"""A run stopped at a checkpoint keeps what it committed and its retry does only the
rest, here on a chunked retention delete (the lease drain's stop between batches
is tested in test_lease.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agnt_jobs import checkpoint
from agnt_jobs.jobs import housekeeping
from agnt_jobs.settings import Settings
from tests.support.jobs import context

NOW = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)


def _stop_after(checks: int) -> checkpoint.StopReason:
    """A stop that comes at the checkpoint after ``checks`` checkpoints passed."""
    seen = [0]

    def reason() -> str | None:
        seen[0] += 1
        return "worker shutting down" if seen[0] > checks else None

    return reason


def _error_logs(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT count(*) FROM error_log")
        ).scalar_one()


def test_a_chunked_delete_stopped_after_two_chunks_keeps_them_and_reruns_the_rest(
    engine: Engine, env: Settings
) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO error_log (source, message, created_at) "
                "SELECT 'test', 'boom ' || i, :at + i * interval '1 second' "
                "FROM generate_series(1, 35) AS i"
            ),
            {"at": NOW - timedelta(days=31)},
        )
    run = context(engine, env, NOW, job_chunk_size=10)
    with (
        checkpoint.stoppable(_stop_after(2)),
        pytest.raises(checkpoint.RunStopped),
    ):
        housekeeping.prune_error_logs(run)
    assert _error_logs(engine) == 35 - 2 * 10
    assert housekeeping.prune_error_logs(run)["deleted"] == 15
    assert _error_logs(engine) == 0
