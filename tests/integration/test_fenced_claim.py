"""A claim a worker gave up on takes nothing, whenever it reaches the server
(``agnt_fenced_claim`` and ``give_up_claims``): one that arrives after the give-up
finds its number given up; while one is under way the give-up fails, and once it
has committed the give-up lets the give-back find what it took. Each
interleaving is played on real sessions, one held in a transaction."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from agnt_jobs.scheduler.stopping import SQL
from agnt_jobs.scheduler.worker import CLAIM_JOBS

JOBS = 3


@pytest.fixture
def worker(db_url: str) -> Iterator[int]:
    """A registered worker and ``JOBS`` waiting jobs."""
    with psycopg.connect(db_url, autocommit=True) as connection:
        row = connection.execute("SELECT procrastinate_register_worker_v1()").fetchone()
        assert row is not None
        connection.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args) "
            "SELECT 'q', 't', '{}'::jsonb FROM generate_series(1, %s)",
            (JOBS,),
        )
        yield int(row[0])


def _claim(connection: psycopg.Connection[Any], worker: int, claim: int) -> list[int]:
    rows = connection.execute(
        CLAIM_JOBS,
        {
            "queues": None,
            "worker_id": worker,
            "n": JOBS,
            "claim": claim,
            "worker_name": "w",
        },
    ).fetchall()
    return [row[0] for row in rows]


def _give_up(connection: psycopg.Connection[Any], worker: int, claim: int) -> bool:
    return bool(
        connection.execute(
            SQL["give_up_claims"], {"worker_id": worker, "claim": claim}
        ).fetchall()
    )


def _give_back(connection: psycopg.Connection[Any], worker: int) -> list[int]:
    rows = connection.execute(
        SQL["give_back_lost_claims"],
        {"worker_id": worker, "running": [], "error": "ClaimLost: test"},
    ).fetchall()
    return [row[0] for row in rows]


def _defer_under_queueing_lock(connection: psycopg.Connection[Any]) -> int:
    row = connection.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, "
        "queueing_lock) VALUES ('q', 't', '{}', 'tick') RETURNING id"
    ).fetchone()
    assert row is not None
    return int(row[0])


def _statuses(connection: psycopg.Connection[Any]) -> dict[int, str]:
    return dict(
        connection.execute("SELECT id, status::text FROM procrastinate_jobs").fetchall()
    )


def _doing(connection: psycopg.Connection[Any], worker: int) -> int:
    row = connection.execute(
        "SELECT count(*) FROM procrastinate_jobs "
        "WHERE status = 'doing' AND worker_id = %s",
        (worker,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _waiting_on_a_lock(connection: psycopg.Connection[Any], pid: int) -> bool:
    row = connection.execute(
        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()
    return row is not None and row[0] == "Lock"


def _soon(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    return thread, result


def test_a_claim_numbered_at_most_what_was_given_up_takes_nothing(
    db_url: str, worker: int
) -> None:
    with psycopg.connect(db_url, autocommit=True) as connection:
        assert _give_up(connection, worker, 2)
        assert _claim(connection, worker, 1) == []
        assert _claim(connection, worker, 2) == []
        assert _doing(connection, worker) == 0
        # A give-up never lowers the mark.
        assert _give_up(connection, worker, 1)
        assert _claim(connection, worker, 2) == []
        assert len(_claim(connection, worker, 3)) == JOBS


def test_a_claim_that_reaches_the_server_during_a_give_up_waits_and_takes_nothing(
    db_url: str, worker: int
) -> None:
    with (
        psycopg.connect(db_url) as giving_up,
        psycopg.connect(db_url, autocommit=True) as claiming,
        psycopg.connect(db_url, autocommit=True) as watching,
    ):
        assert _give_up(giving_up, worker, 1)  # its transaction left open
        thread, claimed = _in_thread(lambda: _claim(claiming, worker, 1))
        assert _soon(lambda: _waiting_on_a_lock(watching, claiming.info.backend_pid))
        giving_up.commit()
        thread.join(10)
        assert claimed == [[]]
        assert _doing(watching, worker) == 0


def test_a_give_up_while_a_claim_is_under_way_waits_for_nothing_and_gives_up_nothing(
    db_url: str, worker: int
) -> None:
    """The interleaving the fence exists for: a claim cut off at the worker's
    deadline still runs on the server. A give-up then fails at once (the worker
    tries again later), and one made after the claim committed lets the give-back
    find its jobs."""
    with (
        psycopg.connect(db_url) as claiming,
        psycopg.connect(db_url, autocommit=True) as giving_up,
    ):
        giving_up.execute("SET lock_timeout = '2s'")  # a give-up that waits fails
        assert len(_claim(claiming, worker, 1)) == JOBS  # not committed yet
        assert _give_up(giving_up, worker, 1) is False
        claiming.commit()
        assert _give_up(giving_up, worker, 1) is True
        assert len(_give_back(giving_up, worker)) == JOBS
        assert _doing(giving_up, worker) == 0
        # The next claim, numbered past the give-up, takes them again.
        assert len(_claim(giving_up, worker, 2)) == JOBS


def test_a_lost_claims_job_whose_queueing_lock_has_a_newer_job_waiting_ends_failed(
    db_url: str, worker: int
) -> None:
    """The job a given-up claim took cannot go back to the queue while a newer job
    of its queueing lock waits (the lock's unique index): it ends failed, as the
    rescue ends such a job, and the newer one, which does its work, waits on."""
    with psycopg.connect(db_url, autocommit=True) as connection:
        connection.execute("DELETE FROM procrastinate_jobs")
        _defer_under_queueing_lock(connection)
        (taken,) = _claim(connection, worker, 1)
        newer = _defer_under_queueing_lock(connection)
        assert _give_up(connection, worker, 1)
        assert _give_back(connection, worker) == [taken]
        assert _statuses(connection) == {taken: "failed", newer: "todo"}


def test_a_newer_job_of_the_queueing_lock_committed_during_the_give_back_fails_it(
    db_url: str, worker: int
) -> None:
    """The newer job is inserted but not committed when the give-back starts, so
    no snapshot of the give-back sees it; the retry waits on the lock's unique
    index until it commits, and the lost job then ends failed, not in an error
    that would stop the worker."""
    with (
        psycopg.connect(db_url, autocommit=True) as connection,
        psycopg.connect(db_url) as deferring,
        psycopg.connect(db_url, autocommit=True) as giving_back,
    ):
        connection.execute("DELETE FROM procrastinate_jobs")
        _defer_under_queueing_lock(connection)
        (taken,) = _claim(connection, worker, 1)
        newer = _defer_under_queueing_lock(deferring)  # not committed yet
        assert _give_up(connection, worker, 1)
        thread, given_back = _in_thread(lambda: _give_back(giving_back, worker))
        assert _soon(
            lambda: _waiting_on_a_lock(connection, giving_back.info.backend_pid)
        )
        deferring.commit()
        thread.join(10)
        assert given_back == [[taken]]
        assert _statuses(connection) == {taken: "failed", newer: "todo"}


def test_a_claim_does_not_hold_up_the_workers_heartbeat(
    db_url: str, worker: int
) -> None:
    """The claim holds the worker's row as its foreign key does (FOR KEY SHARE),
    which the heartbeat's update does not wait for."""
    with (
        psycopg.connect(db_url) as claiming,
        psycopg.connect(db_url, autocommit=True) as beating,
    ):
        assert len(_claim(claiming, worker, 1)) == JOBS
        beating.execute("SET lock_timeout = '2s'")
        beating.execute(
            "UPDATE procrastinate_workers SET last_heartbeat = now() WHERE id = %s",
            (worker,),
        )
        claiming.rollback()
