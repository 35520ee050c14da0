"""The channel gateway: the one system every message to a user goes through."""

from __future__ import annotations

from typing import Any

from agnt_jobs.standins.server import LocalServer, Received, Reply


class FakeChannelGateway(LocalServer):
    """The channel gateway: ``POST /messages``, deduplicating on idempotency_key as
    the real one does. ``fail_next(n, status)`` makes the next n sends fail;
    ``refuse(recipient)`` answers 422 for one recipient forever."""

    def __init__(self) -> None:
        super().__init__(self._respond)
        self.delivered: dict[str, dict[str, Any]] = {}
        self._refused: set[str] = set()

    def refuse(self, recipient: str) -> None:
        self._refused.add(recipient)

    def _respond(self, request: Received) -> Reply:
        if request.method != "POST" or request.path != "/messages":
            return Reply(404, {"error": "not found"})
        message = request.json()
        with self._lock:
            failure = self.next_failure()
            if failure is not None:
                return Reply(failure, {"error": "unavailable"})
            if message["to"] in self._refused:
                return Reply(422, {"error": "unknown recipient"})
            key = message["idempotency_key"]
            first = key not in self.delivered
            if first:
                self.delivered[key] = message
        return Reply(201 if first else 200, {"id": f"gw-{key}"})
