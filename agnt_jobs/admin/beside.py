"""A worker and the admin view in one process, for small deployments and a first
look: ``agnt-jobs worker --admin`` (what ``make run`` starts), and
``worker_lifespan`` for a FastAPI backend that used to start its scheduler in its
lifespan hook. Separate worker processes stay the production form: a web server's
restarts and scaling are not a job system's.

Both stop the same way: the worker stops fetching, running jobs get
``AGNT_SHUTDOWN_GRACEFUL_TIMEOUT`` and then stop at their next checkpoint, and the
admin view goes down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI

from agnt_jobs.admin.app import create_app, router, server_options


class _Server(uvicorn.Server):
    """uvicorn without signal handlers of its own: the worker's take SIGINT and
    SIGTERM, and stopping the worker stops the server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_worker_and_admin(host: str, port: int, **worker_options: Any) -> None:
    """Serve the admin view on ``host:port``, then run a worker until SIGINT or
    SIGTERM; then stop the server. A port that cannot be bound ends the process
    (uvicorn says why) before the worker starts."""
    from agnt_jobs.app import app as jobs
    from agnt_jobs.settings import get_settings

    # Until the worker's own handlers take SIGINT and SIGTERM (once it has
    # started), a stop asked for ends the start: Ctrl-C as the page first answers
    # stops the process cleanly instead of raising KeyboardInterrupt (exit 130).
    loop = asyncio.get_running_loop()
    stop_asked = asyncio.Event()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stop_signal, stop_asked.set)
    server = _Server(
        uvicorn.Config(
            create_app(), host=host, port=port, **server_options(get_settings())
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving  # re-raises why the server could not start
            return
        await asyncio.sleep(0.05)
    try:
        if stop_asked.is_set():
            return
        async with jobs.open_async():
            working = asyncio.create_task(
                jobs.run_worker_async(install_signal_handlers=True, **worker_options)
            )
            await asyncio.wait(
                [working, asyncio.create_task(stop_asked.wait())],
                return_when=asyncio.FIRST_COMPLETED,
            )
            if working.done():
                await working  # re-raises why the worker stopped itself
            else:
                working.cancel()  # the worker's graceful stop
                with contextlib.suppress(asyncio.CancelledError):
                    await working
    finally:
        server.should_exit = True
        await serving


@contextlib.asynccontextmanager
async def worker_lifespan(api: FastAPI) -> AsyncIterator[None]:
    """``FastAPI(lifespan=worker_lifespan)``: mounts the admin view (its routes
    under ``/admin/scheduler``) and runs a worker beside the application while it
    serves; the worker stops, gracefully, when the application shuts down."""
    from agnt_jobs.app import app as jobs

    mounted = {getattr(route, "path", None) for route in api.router.routes}
    if not {getattr(route, "path", None) for route in router.routes} <= mounted:
        api.include_router(router)
    async with jobs.open_async():
        running = asyncio.create_task(
            jobs.run_worker_async(install_signal_handlers=False)
        )
        try:
            yield
        finally:
            running.cancel()  # Procrastinate's graceful stop
            with contextlib.suppress(asyncio.CancelledError):
                await running
