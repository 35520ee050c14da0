"""The new-job notification (migration 0030): a statement that inserts jobs wakes
the listening workers once per queue it filled, whatever the number of jobs, and a
job deferred alone wakes them as Procrastinate's own trigger did. What is counted
is what a listening session receives from the server."""

from __future__ import annotations

import json

import psycopg
from procrastinate import App
from procrastinate.manager import get_channel_for_queues

ANY_QUEUE = "procrastinate_any_queue_v1"


def _listening(db_url: str, queues: list[str]) -> psycopg.Connection:
    listener = psycopg.connect(db_url, autocommit=True)
    for channel in [*get_channel_for_queues(queues=queues), ANY_QUEUE]:
        listener.execute(f'LISTEN "{channel}"')
    return listener


def _heard(listener: psycopg.Connection) -> list[tuple[str, dict[str, object]]]:
    """What the session received so far, in order."""
    return [
        (notify.channel, json.loads(notify.payload))
        for notify in listener.notifies(timeout=0.5)
    ]


async def test_a_statement_of_many_jobs_wakes_each_queue_once(
    app: App, db_url: str
) -> None:
    listener = _listening(db_url, ["batch_a", "batch_b"])
    async with app.open_async():
        ids_a = await app.configure_task("noop", queue="batch_a").batch_defer_async(
            *({} for _ in range(50))
        )
    with listener:
        with psycopg.connect(db_url, autocommit=True) as connection:
            # Two queues in one statement: one pair each.
            ids = connection.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args) "
                "SELECT CASE WHEN g % 2 = 0 THEN 'batch_a' ELSE 'batch_b' END, "
                "'noop', '{}' FROM generate_series(1, 30) AS g RETURNING id, queue_name"
            ).fetchall()
        heard = _heard(listener)
    first_b = min(job_id for job_id, queue in ids if queue == "batch_b")
    first_a = min(job_id for job_id, queue in ids if queue == "batch_a")
    (channel_a,) = get_channel_for_queues(queues=["batch_a"])
    (channel_b,) = get_channel_for_queues(queues=["batch_b"])
    assert len(ids_a) == 50
    assert sorted(heard[:2], key=str) == sorted(
        [
            (channel_a, {"type": "job_inserted", "job_id": min(ids_a)}),
            (ANY_QUEUE, {"type": "job_inserted", "job_id": min(ids_a)}),
        ],
        key=str,
    )
    assert sorted(heard[2:], key=str) == sorted(
        [
            (channel_a, {"type": "job_inserted", "job_id": first_a}),
            (ANY_QUEUE, {"type": "job_inserted", "job_id": first_a}),
            (channel_b, {"type": "job_inserted", "job_id": first_b}),
            (ANY_QUEUE, {"type": "job_inserted", "job_id": first_b}),
        ],
        key=str,
    )


async def test_each_job_deferred_alone_wakes_the_workers(app: App, db_url: str) -> None:
    listener = _listening(db_url, ["alone"])
    async with app.open_async():
        ids = [
            await app.configure_task("noop", queue="alone").defer_async()
            for _ in range(3)
        ]
    with listener:
        heard = _heard(listener)
    (channel,) = get_channel_for_queues(queues=["alone"])
    assert heard == [
        (name, {"type": "job_inserted", "job_id": job_id})
        for job_id in ids
        for name in (channel, ANY_QUEUE)
    ]


async def test_a_statement_that_inserts_no_waiting_job_wakes_no_one(
    app: App, db_url: str
) -> None:
    listener = _listening(db_url, ["none"])
    with listener:
        with psycopg.connect(db_url, autocommit=True) as connection:
            connection.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status) "
                "VALUES ('none', 'noop', '{}', 'succeeded')"
            )
            connection.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args) "
                "SELECT 'none', 'noop', '{}' WHERE false"
            )
        heard = _heard(listener)
    assert heard == []
