"""Procrastinate's App and Worker with our start-up and our deferrer, so that the stock
``procrastinate --app=agnt_jobs.app.app worker`` does everything ``agnt-jobs worker``
does: sync the schedules table, warn about schedules without a body, and defer
each schedule in its zone under its misfire policy.

The two seams are ``App._worker`` (which worker class to build) and
``Worker._periodic_deferrer`` (which deferrer to run). Both are private to
Procrastinate, which is pinned to a minor version; the acceptance tests start real
``procrastinate`` workers, so a change in either fails them.
"""

from __future__ import annotations

from typing import Any

from procrastinate import App, worker

from agnt_jobs import scheduling
from agnt_jobs.deferrer import ScheduleDeferrer
from agnt_jobs.schedule import Schedule
from agnt_jobs.settings import get_settings


class AgntWorker(worker.Worker):
    app: AgntApp

    async def run(self) -> None:
        # Before the worker registers: a database without our schema stops it here
        # with a one-line reason instead of deferring into nothing.
        await scheduling.sync_table(self.app)
        await super().run()

    async def _periodic_deferrer(self) -> None:
        deferrer = ScheduleDeferrer(
            app=self.app, settings=get_settings(), worker_id=self.worker_id
        )
        await deferrer.worker()


class AgntApp(App):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Every declared schedule by id, with or without a job body.
        self.schedules: dict[str, Schedule] = {}

    def _worker(self, **kwargs: Any) -> worker.Worker:
        return AgntWorker(app=self, **{**self.worker_defaults, **kwargs})
