"""Deadlines, cancel and retry with a real worker, on ``test_chunks`` of
``tests/acceptance/ticking_app.py`` (ten 0.2 s chunks, a checkpoint before each,
every 3 s): a run past its schedule's timeout ends timed_out with its finished
chunks kept and the next tick runs; a running run cancelled from the CLI stops at a
checkpoint and ends cancelled; a waiting one (run --at) is cancelled at once;
failed runs are retried one by one and in bulk; impossible requests are one line,
exit 2, nothing changed."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support import ticking
from tests.support.ticking import BIN, ROOT

pytestmark = pytest.mark.slow


def _agnt(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "agnt-jobs", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _runs(engine: Engine) -> list[sa.Row]:
    return ticking.query(
        engine,
        "SELECT job_id, attempt, status FROM job_runs WHERE task_name = 'test_chunks' "
        "ORDER BY job_id, attempt",
    )


def _audit(engine: Engine, job_id: int) -> str:
    return ticking.query(
        engine, "SELECT status FROM job_run_audit WHERE job_id = :id", id=job_id
    )[0][0]


def _chunks(path: Path, job_id: int) -> list[int]:
    lines = path.read_text().split("\n") if path.exists() else []
    return [
        int(c) for j, c in (line.split() for line in lines if line) if int(j) == job_id
    ]


CHUNKS = 40


def test_timeout_cancel_and_retry(db_url: str, engine: Engine, tmp_path: Path) -> None:
    chunks = tmp_path / "chunks"
    # Runs of 8 s: long enough that the cancel, a command that may take seconds to
    # start on a loaded machine, reaches a run still going.
    env = ticking.env(
        db_url,
        AGNT_TEST_SCHEDULES="test_chunks",
        AGNT_TEST_CHUNKS_FILE=str(chunks),
        AGNT_TEST_CHUNKS=str(CHUNKS),
    )
    with ticking.workers(env, count=1, logs=tmp_path):
        ticking.wait_for(
            lambda: ticking.query(
                engine, "SELECT 1 FROM schedules WHERE id = 'test_chunks'"
            )
        )
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE schedules SET timeout = '1 second' "
                        "WHERE id = 'test_chunks'")
            )  # fmt: skip
        ticking.wait_for(lambda: any(r.status == "timed_out" for r in _runs(engine)))
        [timed_out, *_] = [r.job_id for r in _runs(engine) if r.status == "timed_out"]
        # Stopped at a checkpoint: the chunks it finished stand, the rest never ran.
        assert 1 <= len(_chunks(chunks, timed_out)) < CHUNKS
        assert _audit(engine, timed_out) == "timed_out"
        # Not retried: a timeout is final for that run; the next tick runs anew.
        assert [r.attempt for r in _runs(engine) if r.job_id == timed_out] == [1]

        assert _agnt(env, "schedules", "set", "test_chunks", "--timeout",
                     "1 minute").returncode == 0  # fmt: skip
        # Runs started from now on have the minute.
        longer_from = ticking.db_now(engine)
        ticking.wait_for(lambda: any(r.status == "succeeded" for r in _runs(engine)))
        [succeeded, *_] = [r.job_id for r in _runs(engine) if r.status == "succeeded"]
        assert _chunks(chunks, succeeded) == list(range(CHUNKS))

        # Cancel a running run: it stops at its next checkpoint, ends cancelled.
        ticking.wait_for(
            lambda: ticking.query(
                engine,
                "SELECT 1 FROM job_runs WHERE task_name = 'test_chunks' "
                "AND status = 'running' AND started_at > :after "
                "AND started_at < now() - interval '0.3 s'",
                after=longer_from,
            )
        )
        [(running,)] = ticking.query(
            engine,
            "SELECT job_id FROM job_runs WHERE task_name = 'test_chunks' "
            "AND status = 'running' AND started_at > :after",
            after=longer_from,
        )
        cancelled = _agnt(env, "runs", "cancel", str(running), "--by", "ana")
        assert cancelled.returncode == 0, cancelled.stderr
        assert "stops at its next checkpoint" in cancelled.stdout
        ticking.wait_for(
            lambda: any(r.job_id == running and r.status == "cancelled"
                        for r in _runs(engine))
        )  # fmt: skip
        assert _audit(engine, running) == "cancelled"
        assert len(_chunks(chunks, running)) < CHUNKS

        # Retry it: a new job of the same tick, which runs to the end.
        retried = _agnt(env, "runs", "retry", str(running))
        assert retried.returncode == 0, retried.stderr
        new_id = int(retried.stdout.split()[-1])
        ticking.wait_for(lambda: len(_chunks(chunks, new_id)) == CHUNKS)
        args = ticking.query(
            engine,
            "SELECT args FROM procrastinate_jobs WHERE id IN (:a, :b) ORDER BY id",
            a=running,
            b=new_id,
        )
        assert args[0] == args[1]
        again = _agnt(env, "runs", "retry", str(running))
        assert again.returncode == 2
        assert f"job {running} was already retried as job {new_id}" in again.stderr

        # A run at a time (of a job of the real app, which the CLI knows) waits as
        # scheduled, and is cancelled at once.
        year = datetime.now(UTC).year + 1
        at = _agnt(env, "run", "prune_error_logs", "--at", f"{year}-12-24 09:00")
        assert at.returncode == 0, at.stderr
        assert f"for {year}-12-24 09:00 WITA ({year}-12-24 01:00 UTC)" in at.stdout
        # Past ten years ahead is refused in one line, and nothing waits for it.
        far = _agnt(env, "run", "prune_error_logs", "--at", "9999-12-31 23:59")
        assert far.returncode == 2 and far.stderr.count("\n") == 1, far.stderr
        assert "ten years from now" in far.stderr
        waiting = int(at.stdout.split()[4])
        assert _audit(engine, waiting) == "todo"
        assert _agnt(env, "runs", "cancel", str(waiting)).stdout.strip() == (
            f"job {waiting} cancelled"
        )
        assert _audit(engine, waiting) == "cancelled"

        # Bulk: the timed-out runs of the first minutes, not those already retried.
        since = ticking.query(engine, "SELECT min(started_at) FROM job_runs")[0][0]
        bulk = _agnt(env, "runs", "retry", "--job", "test_chunks", "--since",
                     since.isoformat())  # fmt: skip
        assert bulk.returncode == 0, bulk.stderr
        retried_ids = [int(line.split()[1]) for line in bulk.stdout.splitlines()[:-1]]
        assert timed_out in retried_ids and running not in retried_ids

    for args, message in [
        (("runs", "cancel", "999999"), "agnt-jobs: no run with job id 999999"),
        (("runs", "cancel", str(succeeded)), f"agnt-jobs: job {succeeded} has "
         "already ended (succeeded): nothing to cancel"),
        (("runs", "retry", str(succeeded)), f"agnt-jobs: job {succeeded} is "
         "succeeded: only a failed, timed-out or cancelled run is retried"),
        (("runs", "retry"), "agnt-jobs: give a JOB_ID, or --job"),
        (("run", "prune_error_logs", "--at", "2001-01-01 00:00"), "agnt-jobs: "
         "2001-01-01T00:00:00+08:00 is in the past"),
        (("run", "prune_error_logs", "--at", "tomorrow"), "agnt-jobs: --at "
         "'tomorrow' is not a time"),
    ]:  # fmt: skip
        before = ticking.query(engine, "SELECT count(*) FROM job_run_actions")
        result = _agnt(env, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(message), line
        assert ticking.query(engine, "SELECT count(*) FROM job_run_actions") == before
    actions = ticking.query(
        engine, "SELECT action, requested_by, source FROM job_run_actions ORDER BY id"
    )
    assert actions[0] == ("cancel", "ana", "cli")
    assert [a.action for a in actions[:4]] == ["cancel", "retry", "run_at", "cancel"]
