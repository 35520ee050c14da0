"""How a worker groups jobs' ends (``stopping.Batches``): the first goes at once,
those that come while it is on its way go together next, and each caller learns
its own job's outcome, or the statement's error. The statement itself is tested
on a real database (tests/integration/test_shutdown.py, test_lock_handover.py)."""

from __future__ import annotations

import asyncio

import pytest

from agnt_jobs.scheduler.stopping import Batches


class Statement:
    """Stands for the database: records each batch, answers when released."""

    def __init__(
        self, theirs: frozenset[int] = frozenset(), fail: bool = False
    ) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.theirs = theirs
        self.fail = fail

    async def __call__(self, ends: list[dict]) -> set[int]:
        ids = [end["job_id"] for end in ends]
        self.batches.append(ids)
        await self.release.wait()
        if self.fail:
            raise ConnectionError("the database went away")
        return set(ids) - self.theirs


async def test_ends_that_come_while_one_is_on_its_way_go_together() -> None:
    statement = Statement(theirs=frozenset({3}))
    batches = Batches(statement)
    first = asyncio.create_task(batches.end({"job_id": 1}))
    await asyncio.sleep(0)
    others = [asyncio.create_task(batches.end({"job_id": n})) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    assert statement.batches == [[1]]
    statement.release.set()
    assert await first is True
    # The job another took (3) is not recorded as ours.
    assert [await task for task in others] == [True, False, True]
    assert statement.batches == [[1], [2, 3, 4]]
    # Idle again: the next end goes at once, alone.
    assert await batches.end({"job_id": 5}) is True
    assert statement.batches[-1] == [5]


async def test_every_end_of_a_failed_statement_gets_its_error() -> None:
    statement = Statement(fail=True)
    batches = Batches(statement)
    ends = [asyncio.create_task(batches.end({"job_id": n})) for n in (1, 2)]
    await asyncio.sleep(0)
    statement.release.set()
    for task in ends:
        with pytest.raises(ConnectionError):
            await task
    statement.fail = False
    assert await batches.end({"job_id": 3}) is True
