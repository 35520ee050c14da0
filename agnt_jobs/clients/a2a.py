"""The A2A dispatch client: POSTs an envelope to a venue agent's endpoint.

Each venue runs its own agent, so the URL is the venue's ``agent_endpoint`` (data, not
a setting). The body is the envelope as JSON and ``Idempotency-Key`` is
``a2a-envelope-{id}``: a re-dispatch after a timeout or a crash carries the same key,
so a venue agent that already has the envelope can answer 2xx without acting twice.
Errors are classified by ``clients.http``: timeouts, connection errors, 5xx and 429
are retryable; any other 4xx, or an endpoint that is not an http(s) URL, is permanent.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from agnt_jobs.clients.errors import PermanentError
from agnt_jobs.clients.http import HttpClient, build_client, request
from agnt_jobs.settings import Settings


def idempotency_key(envelope_id: int) -> str:
    return f"a2a-envelope-{envelope_id}"


class A2AClient(HttpClient):
    def __init__(
        self,
        token: str | None = None,
        timeout: float = 10.0,
        max_connections: int = 32,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = build_client(
            "", timeout, headers, transport, max_connections=max_connections
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> A2AClient:
        token = settings.a2a_token
        return cls(
            token.get_secret_value() if token else None,
            settings.http_timeout_seconds,
            max_connections=settings.a2a_dispatch_concurrency,
        )

    def dispatch(self, endpoint: str | None, envelope: dict[str, Any]) -> int:
        """POST ``envelope`` (which has an ``id``) to ``endpoint``; return the HTTP
        status the venue agent accepted it with."""
        parts = urlsplit(endpoint or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            # No agent, or a malformed one: retrying cannot help until someone
            # fixes the venue, so the envelope gives up (and is dead-lettered).
            raise PermanentError(f"venue has no usable agent endpoint: {endpoint!r}")
        response = request(
            self._client,
            "POST",
            str(endpoint),
            json=envelope,
            headers={"Idempotency-Key": idempotency_key(envelope["id"])},
        )
        return response.status_code
