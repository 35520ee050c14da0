"""The channel gateway: delivers a text to a user on WhatsApp, Telegram, web or email.

``POST /messages {to, channel, text, idempotency_key}``; the gateway deduplicates on
the key, so re-sending after a crash or a timeout never reaches the user twice.
"""

from __future__ import annotations

import httpx

from agnt_jobs.clients.http import HttpClient, build_client, request
from agnt_jobs.settings import ConfigError, Settings


class ChannelGateway(HttpClient):
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 10.0,
        max_connections: int = 32,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = build_client(
            base_url, timeout, headers, transport, max_connections=max_connections
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ChannelGateway:
        if not settings.channel_gateway_url:
            raise ConfigError(
                "AGNT_CHANNEL_GATEWAY_URL is not set: set it to the channel "
                "gateway's base URL to send messages"
            )
        token = settings.channel_gateway_token
        return cls(
            settings.channel_gateway_url,
            token.get_secret_value() if token else None,
            settings.http_timeout_seconds,
            max_connections=settings.send_concurrency,
        )

    def send(self, to: str, channel: str, text: str, idempotency_key: str) -> str:
        """Deliver one message; return the gateway's message id."""
        response = request(
            self._client,
            "POST",
            "/messages",
            json={
                "to": to,
                "channel": channel,
                "text": text,
                "idempotency_key": idempotency_key,
            },
        )
        try:
            return str(response.json().get("id") or idempotency_key)
        except ValueError:
            return idempotency_key
