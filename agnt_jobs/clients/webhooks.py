"""Outbound webhooks to venues' and partners' endpoints, signed so a receiver can
prove a request came from us, unaltered and recently.

Each delivery is ``POST <endpoint url>`` with the event as a JSON body and:

* ``X-AGNT-Timestamp``: Unix seconds when this attempt was signed;
* ``X-AGNT-Signature``: ``v1=`` + hex HMAC-SHA256, keyed with the endpoint's secret,
  of ``"<timestamp>.<raw body>"``;
* ``X-AGNT-Delivery``: the delivery id, the same on every retry (deduplicate on it);
* ``X-AGNT-Event``: the event type.

A receiver recomputes the HMAC over the timestamp header, a dot and the raw body
bytes, compares it in constant time (``verify`` below does exactly that), and
rejects a timestamp more than five minutes from its clock: a captured request
cannot be replayed later, because changing the timestamp breaks the signature.
Any 2xx is success; anything else is retried (see ``drain_webhook_retries``), and
``410 Gone`` means "stop sending this one".
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from agnt_jobs.clients.http import HttpClient, build_client, request

TIMESTAMP_HEADER = "X-AGNT-Timestamp"
SIGNATURE_HEADER = "X-AGNT-Signature"
DELIVERY_HEADER = "X-AGNT-Delivery"
EVENT_HEADER = "X-AGNT-Event"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent: compact JSON with sorted keys, so every retry of a
    delivery carries the same body."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def verify(
    secret: str,
    timestamp_header: str,
    signature_header: str,
    body: bytes,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: right signature, and a timestamp close to its clock."""
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature_header)


class WebhookSender(HttpClient):
    """Sends signed deliveries to any endpoint URL (each endpoint has its own)."""

    def __init__(
        self,
        timeout: float = 10.0,
        max_connections: int = 8,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = build_client(
            "", timeout, transport=transport, max_connections=max_connections
        )

    def deliver(
        self,
        url: str,
        secret: str,
        delivery_id: int,
        event_type: str,
        payload: dict[str, Any],
        timestamp: int,
    ) -> int:
        """POST one delivery; return the 2xx status or raise a classified error."""
        body = body_bytes(payload)
        response = request(
            self._client,
            "POST",
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(secret, timestamp, body),
                DELIVERY_HEADER: str(delivery_id),
                EVENT_HEADER: event_type,
            },
        )
        return response.status_code
