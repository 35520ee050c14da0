"""Local peers for the operations jobs: the alerts webhook, a webhook receiver that
checks our signature as a real one would, and the three marketplaces answering in
their own response shapes (``marketplaces``)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import Counter
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agnt_jobs.standins.marketplaces import LAZADA, SHOPEE, TOKOPEDIA, Marketplace
from agnt_jobs.standins.server import LocalServer, Received, Reply


class FakeAlerts(LocalServer):
    """The alerts webhook: keeps each alert once per Idempotency-Key (a second post
    of the same key is counted in ``received`` but not in ``alerts``)."""

    def __init__(self) -> None:
        super().__init__(self._respond)
        self.alerts: dict[str, dict[str, Any]] = {}

    def _respond(self, request: Received) -> Reply:
        with self._lock:
            failure = self.next_failure()
            if failure is not None:
                return Reply(failure, {"error": "unavailable"})
            self.alerts.setdefault(request.headers["idempotency-key"], request.json())
        return Reply(200, {"ok": True})


class WebhookReceiver(LocalServer):
    """A partner's endpoint: rejects a request whose HMAC-SHA256 over
    ``timestamp.body`` (computed here independently of our client) does not match,
    or whose timestamp is more than five minutes off; records accepted deliveries
    by delivery id. ``answer(status)`` sets the reply to every valid request."""

    def __init__(self, secret: str) -> None:
        super().__init__(self._respond)
        self.secret = secret
        self.status = 200
        self.accepted: Counter[str] = Counter()
        self.rejected = 0

    def answer(self, status: int) -> None:
        self.status = status

    def _valid(self, request: Received) -> bool:
        stamp = request.headers.get("x-agnt-timestamp", "")
        given = request.headers.get("x-agnt-signature", "")
        expected = hmac.new(
            self.secret.encode(), stamp.encode() + b"." + request.body, hashlib.sha256
        ).hexdigest()
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) <= 300
        return fresh and hmac.compare_digest(given, f"v1={expected}")

    def _respond(self, request: Received) -> Reply:
        with self._lock:
            if not self._valid(request):
                self.rejected += 1
                return Reply(401, {"error": "bad signature"})
            if 200 <= self.status < 300:
                self.accepted[request.headers["x-agnt-delivery"]] += 1
            return Reply(self.status, {})


class FakeMarketplace(LocalServer):
    """A marketplace's product API (``market``, in ``marketplaces``). ``prices`` maps
    product refs to prices (a ref missing from it is an unknown product); ``down``
    answers 503 to everything. ``asked`` counts requests per product ref."""

    market: Marketplace

    def __init__(self, prices: dict[str, Decimal]) -> None:
        super().__init__(self._respond)
        self.prices = prices
        self.down = False
        self.asked: Counter[str] = Counter()

    def _respond(self, request: Received) -> Reply:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.path).query).items()}
        ref = self.market.ref(query, request.body)
        with self._lock:
            self.asked[ref] += 1
            if self.down:
                return Reply(503, {"error": "maintenance"})
            price = self.prices.get(ref)
        return Reply(*self.market.answer(ref, price))


class FakeShopee(FakeMarketplace):
    market = SHOPEE


class FakeTokopedia(FakeMarketplace):
    market = TOKOPEDIA


class FakeLazada(FakeMarketplace):
    market = LAZADA
