"""Is a worker alive, and is it ready? The two answers an orchestrator asks for,
served by a worker on a port of its own (``AGNT_PROBE_PORT``; none unless set):

- ``GET /livez``: 200 while the worker's loops run (none has ended, the worker has
  not given up); that the worker's event loop answers at all shows it is not stuck.
  A lost database does not make a worker dead: it outlives its database, and a
  restart would not bring the database back.
- ``GET /readyz``: 200 when, in addition, the worker is not stopping and the
  database answers within ``READY_TIMEOUT_SECONDS`` at the code's schema revision.

The readiness of the database (``database_problem``) is the one check the admin
view's ``/readyz`` and ``agnt-jobs healthcheck`` make too. The server is a small
HTTP/1.1 responder on the worker's own event loop, started as one more of its
supervised loops: GET or HEAD, one request per connection, nothing else parsed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from agnt_jobs import logs
from agnt_jobs.db import migrate
from agnt_jobs.db.outage import as_database_error

logger = logging.getLogger(__name__)

#: A probe's database check gives up after this long (Kubernetes' default probe
#: timeout is 1 s: the manifests give the probes more than this).
READY_TIMEOUT_SECONDS = 2.0
# A request's head must arrive within this long and fit in this many bytes.
REQUEST_TIMEOUT_SECONDS = 5.0
REQUEST_LIMIT_BYTES = 8192

QueryOne = Callable[[str], Awaitable[Mapping[str, Any]]]


class DatabaseUnanswered(Exception):
    """The database did not answer a probe's query; the message says how."""


async def schema_revision(query_one: QueryOne) -> str | None:
    """The database's schema revision (None: never migrated), asked within
    ``READY_TIMEOUT_SECONDS``; ``DatabaseUnanswered`` if it does not answer."""

    async def revision() -> str | None:
        if not (await query_one(migrate.HAS_REVISION))["present"]:
            return None
        revision: str = (await query_one(migrate.CURRENT_REVISION))["revision"]
        return revision

    asking = asyncio.ensure_future(revision())
    await asyncio.wait({asking}, timeout=READY_TIMEOUT_SECONDS)
    if not asking.done():
        # Not awaited: a query on a silent connection may take long to cancel,
        # and the probe must answer now. It ends in the background.
        asking.cancel()
        asking.add_done_callback(_consume)
        raise DatabaseUnanswered(
            f"the database did not answer within {READY_TIMEOUT_SECONDS:g} s"
        )
    try:
        return asking.result()
    except Exception as error:
        # Whatever the driver, the pool or Procrastinate raised, the database did
        # not answer this probe: not ready, and the reason is the answer.
        cause = as_database_error(getattr(error, "orig", None) or error)
        text = str(cause).strip().splitlines()
        raise DatabaseUnanswered(
            f"the database cannot be reached: {text[0] if text else repr(cause)}"
        ) from None


async def database_problem(query_one: QueryOne, head: str) -> str | None:
    """None when the database answers within ``READY_TIMEOUT_SECONDS`` and its
    schema is at ``head``; else the one line that says what is wrong."""
    try:
        current = await schema_revision(query_one)
    except DatabaseUnanswered as unanswered:
        return str(unanswered)
    return migrate.behind(current, head)


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def answer(problem: str | None) -> tuple[int, dict[str, str]]:
    """A probe's HTTP status and body: 200 ``ok``, or 503 with the reason."""
    if problem is None:
        return 200, {"status": "ok"}
    return 503, {"status": "failing", "reason": problem}


class WorkerProbes:
    """The probe server of one worker: ``loops`` are its supervised loops,
    ``failure`` says why it is giving up (None while it is not), ``stopping``
    whether it was asked to stop, ``query_one`` runs a query on its connector."""

    def __init__(
        self,
        loops: Sequence[asyncio.Task[Any]],
        *,
        failure: Callable[[], str | None],
        stopping: Callable[[], bool],
        query_one: QueryOne,
    ) -> None:
        self.loops = loops
        self.failure = failure
        self.stopping = stopping
        self.query_one = query_one
        self.head = migrate.head_revision()

    def liveness(self) -> str | None:
        failure = self.failure()
        if failure is not None:
            return f"the worker is failing: {failure}"
        ended = sorted(loop.get_name() for loop in self.loops if loop.done())
        if ended:
            return f"the worker's loops ended: {', '.join(ended)}"
        return None

    async def readiness(self) -> str | None:
        problem = self.liveness()
        if problem is None and self.stopping():
            problem = "the worker is stopping"
        if problem is None:
            problem = await database_problem(self.query_one, self.head)
        return problem

    async def serve(self, host: str, port: int) -> None:
        server = await asyncio.start_server(
            self._respond, host, port, limit=REQUEST_LIMIT_BYTES
        )
        logger.info(
            f"probes on http://{host}:{port}/livez and /readyz",
            extra=logs.event("probes_start", host=host, port=port),
        )
        async with server:
            await server.serve_forever()

    async def _respond(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            method, status, body = await self._handle(reader)
            payload = json.dumps(body).encode()
            writer.write(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n"
                "Cache-Control: no-store\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            if method != "HEAD":
                writer.write(payload)
            await writer.drain()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the prober went away, or never finished its request
        finally:
            writer.close()

    async def _handle(
        self, reader: asyncio.StreamReader
    ) -> tuple[str, int, dict[str, str]]:
        try:
            head = await asyncio.wait_for(
                reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_SECONDS
            )
        except asyncio.LimitOverrunError:
            return "", 400, {"status": "bad request"}
        method, _, rest = head.decode("latin-1").partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if method not in ("GET", "HEAD"):
            return method, 405, {"status": "method not allowed"}
        if path == "/livez":
            return method, *answer(self.liveness())
        if path == "/readyz":
            return method, *answer(await self.readiness())
        return method, 404, {"status": "not found"}


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}
