"""The deploy as the App sees it: which declared schedules have a body (and so a
periodic task), and that adding a body needs nothing but its registration."""

from __future__ import annotations

from procrastinate import PsycopgConnector

from agnt_jobs.app import app
from agnt_jobs.scheduler import deploy, tasks
from agnt_jobs.scheduler.deploy import ZonedPeriodicTask
from agnt_jobs.scheduler.worker import AgntApp
from periodic import DECLARED

# Declared schedules whose job body is not written: none. A schedule declared
# without a body makes this test fail until the body lands.
MISSING_BODIES: set[str] = set()


def test_missing_bodies_are_exactly_the_pinned_ones() -> None:
    assert set(deploy.missing_bodies(app)) == MISSING_BODIES


def test_every_schedule_with_a_body_is_a_zoned_periodic_task() -> None:
    assert list(app.schedules) == [schedule.id for schedule in DECLARED]
    registered = app.periodic_registry.periodic_tasks
    assert set(registered) == {
        (id_, id_) for id_ in app.schedules if id_ not in MISSING_BODIES
    }
    for (task_name, periodic_id), periodic_task in registered.items():
        assert isinstance(periodic_task, ZonedPeriodicTask)
        assert task_name == periodic_id == periodic_task.schedule.id
        task = app.tasks[task_name]
        assert task.queueing_lock == task_name
        if task_name == "rescue_stalled_jobs":
            # A dead instance of the rescuer must not block the next one.
            assert task.lock is None
        else:
            assert task.lock == task_name
        assert task.queue == periodic_task.schedule.queue


def test_a_body_added_later_is_scheduled_with_no_other_change() -> None:
    """What app.py does at import, on a fresh app: a body registered for a declared
    id (here by hand, normally by importing its module) becomes a periodic task."""
    fresh = AgntApp(connector=PsycopgConnector())
    tasks.make_task(fresh, "wiki_reconcile", lambda ctx: {"pages": 0})
    deploy.register(fresh, DECLARED)
    periodic_task = fresh.periodic_registry.periodic_tasks[
        ("wiki_reconcile", "wiki_reconcile")
    ]
    assert periodic_task.schedule.cron == "0 5 * * 0"
    assert fresh.tasks["wiki_reconcile"].queue == "heavy"
    assert "wiki_reconcile" not in deploy.missing_bodies(fresh)
