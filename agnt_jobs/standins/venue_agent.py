"""A local venue agent: accepts A2A envelopes at ``POST .../a2a`` (any venue's path,
so one server can stand in for every venue of a data set) and records them.

Like a real agent, it deduplicates on the ``Idempotency-Key`` header (a repeated
envelope is answered 200 and not counted again). ``fail_next(n, status)`` makes the
next n requests fail; ``refuse()`` answers 422 to everything from then on."""

from __future__ import annotations

from typing import Any

from agnt_jobs.standins.server import LocalServer, Received, Reply


class FakeVenueAgent(LocalServer):
    def __init__(self) -> None:
        super().__init__(self._respond)
        self.envelopes: dict[str, dict[str, Any]] = {}
        self._refusing = False

    @property
    def endpoint(self) -> str:
        return f"{self.url}/a2a"

    def refuse(self) -> None:
        self._refusing = True

    def _respond(self, request: Received) -> Reply:
        if request.method != "POST" or not request.path.endswith("/a2a"):
            return Reply(404, {"error": "not found"})
        with self._lock:
            failure = self.next_failure()
            if failure is not None:
                return Reply(failure, {"error": "busy"})
            if self._refusing:
                return Reply(422, {"error": "unknown booking"})
            key = request.headers.get("idempotency-key", "")
            first = key not in self.envelopes
            if first:
                self.envelopes[key] = request.json()
        return Reply(202 if first else 200, {"accepted": True})
