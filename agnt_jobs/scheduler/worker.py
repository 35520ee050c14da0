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

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from procrastinate import worker

from agnt_jobs.scheduler import registry
from agnt_jobs.scheduler.deferrer import ScheduleDeferrer
from agnt_jobs.scheduler.history import HistoryWriter, writer_for
from agnt_jobs.settings import get_settings

# What Python gives a loop's default executor, and how many threads beyond the
# worker's concurrency we keep for other to_thread callers.
DEFAULT_EXECUTOR_THREADS = min(32, (os.cpu_count() or 1) + 4)
SPARE_THREADS = 2


class AgntWorker(worker.Worker):
    app: AgntApp
    #: The run history's connection while the worker runs (agnt_jobs.scheduler.history).
    history: HistoryWriter | None = None

    async def run(self) -> None:
        # Before the worker registers: a database without our schema stops it here
        # with a one-line reason instead of deferring into nothing.
        await registry.sync_table(self.app)
        self._size_executor()
        writer = writer_for(self.app.connector)
        if writer is None:
            await super().run()
            return
        async with writer:
            self.history = writer
            try:
                await super().run()
            finally:
                self.history = None

    def _size_executor(self) -> None:
        """Give the event loop enough threads to run ``concurrency`` job bodies.

        Procrastinate runs a sync task in the loop's default executor, which Python
        sizes min(32, cpus + 4): 6 threads on a 2-core machine, so a worker at
        concurrency 10 ran 6 bodies and left 4 fetched jobs waiting for a thread
        (the queue benchmark: 50 ms jobs at 115/s, where 10 threads give 190/s).
        A few threads more than the jobs serve ``asyncio.to_thread`` callers.
        """
        threads = self.concurrency + SPARE_THREADS
        if threads > DEFAULT_EXECUTOR_THREADS:
            asyncio.get_running_loop().set_default_executor(
                ThreadPoolExecutor(max_workers=threads, thread_name_prefix="agnt-job")
            )

    async def _periodic_deferrer(self) -> None:
        deferrer = ScheduleDeferrer(
            app=self.app, settings=get_settings(), worker_id=self.worker_id
        )
        await deferrer.worker()


class AgntApp(registry.ScheduledApp):
    """The App whose workers are ``AgntWorker``s (the stock CLI builds them too)."""

    def _worker(self, **kwargs: Any) -> worker.Worker:
        return AgntWorker(app=self, **{**self.worker_defaults, **kwargs})
