"""What every HTTP client shares: building an ``httpx.Client`` with our timeout, and
turning transport errors and statuses into retryable or permanent errors."""

from __future__ import annotations

from typing import Any, Self

import httpx

from agnt_jobs import tracing
from agnt_jobs.clients.errors import PermanentError, RetryableError

# 408 timeout, 425 too early, 429 rate limited: the peer asks us to come back later.
RETRYABLE_STATUSES = frozenset({408, 425, 429})


def build_client(
    base_url: str,
    timeout: float,
    headers: dict[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    max_connections: int = 32,
) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout),
        headers=headers or {},
        transport=transport,
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
    )


def request(
    client: httpx.Client, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """Send one request; return the 2xx response or raise a classified error.
    With traces on, the request is a span, a child of the run's (its query
    string left out: it may carry a key). With traces off the request is sent as
    it is: the span's attributes (the URL taken apart) cost more than the span."""
    if not tracing.on():
        return _classified(client, method, url, **kwargs)
    target = client.base_url.join(url)
    with tracing.span(
        f"HTTP {method}",
        {
            "http.request.method": method,
            "server.address": target.host,
            "url.path": target.path,
        },
    ) as traced:
        try:
            response = _classified(client, method, url, **kwargs)
        except (RetryableError, PermanentError) as error:
            traced.set_attribute("http.response.status_code", error.status)
            traced.set_status_error(str(error))
            raise
        traced.set_attribute("http.response.status_code", response.status_code)
        return response


def _classified(
    client: httpx.Client, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException as error:
        raise RetryableError(f"{method} {url}: timed out ({error})") from error
    except httpx.TransportError as error:
        raise RetryableError(
            f"{method} {url}: {type(error).__name__}: {error}"
        ) from error
    if response.is_success:
        return response
    detail = response.text[:200].strip()
    message = f"{method} {url}: HTTP {response.status_code} {detail}".strip()
    if response.status_code >= 500 or response.status_code in RETRYABLE_STATUSES:
        raise RetryableError(message, status=response.status_code)
    raise PermanentError(message, status=response.status_code)


class HttpClient:
    """Base of our clients of one outside system: owns one ``httpx.Client`` (its
    connection pool) and closes it when used as a context manager."""

    _client: httpx.Client

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
