"""The alerts webhook: where operators hear about the platform (health changes, the
weekly dead-letter report). One POST of JSON per alert to ``AGNT_ALERTS_WEBHOOK_URL``:

    {"text": "...", "kind": "health", "data": {...}}

``text`` makes it readable as-is by Slack-style incoming webhooks; ``data`` carries
the figures for anything that parses it. ``Idempotency-Key`` names the alert, so a
receiver that deduplicates shows a re-sent alert once.
"""

from __future__ import annotations

from typing import Any

import httpx

from agnt_jobs.clients.http import HttpClient, build_client, request
from agnt_jobs.settings import Settings


class AlertsWebhook(HttpClient):
    def __init__(
        self,
        url: str,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._url = url
        self._client = build_client(url, timeout, transport=transport)

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertsWebhook | None:
        """The configured webhook, or None when ``AGNT_ALERTS_WEBHOOK_URL`` is unset."""
        if not settings.alerts_webhook_url:
            return None
        return cls(settings.alerts_webhook_url, settings.http_timeout_seconds)

    def post(
        self, kind: str, text: str, data: dict[str, Any], idempotency_key: str
    ) -> None:
        request(
            self._client,
            "POST",
            self._url,
            json={"text": text, "kind": kind, "data": data},
            headers={"Idempotency-Key": idempotency_key},
        )
