"""Local peers for the operations jobs: the alerts webhook, a webhook receiver that
checks our signature as a real one would, and the three marketplaces answering in
their own response shapes."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import Counter
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agnt_jobs.standins.server import LocalServer, Received, Reply


class FakeAlerts(LocalServer):
    """The alerts webhook: keeps each alert once per Idempotency-Key (a second post
    of the same key is counted in ``received`` but not in ``alerts``)."""

    def __init__(self) -> None:
        super().__init__(self._respond)
        self.alerts: dict[str, dict[str, Any]] = {}
        self._failures: list[int] = []

    def fail_next(self, count: int, status: int = 503) -> None:
        self._failures.extend([status] * count)

    def _respond(self, request: Received) -> Reply:
        with self._lock:
            if self._failures:
                return Reply(self._failures.pop(0), {"error": "unavailable"})
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
    """A marketplace's product API. ``prices`` maps product refs to prices (a ref
    missing from it is an unknown product); ``down`` answers 503 to everything.
    ``asked`` counts requests per product ref."""

    def __init__(self, prices: dict[str, Decimal]) -> None:
        super().__init__(self._respond)
        self.prices = prices
        self.down = False
        self.asked: Counter[str] = Counter()

    def _respond(self, request: Received) -> Reply:
        ref = self.ref(request)
        with self._lock:
            self.asked[ref] += 1
            if self.down:
                return Reply(503, {"error": "maintenance"})
            price = self.prices.get(ref)
        return self.answer(ref, price)

    def ref(self, request: Received) -> str:
        raise NotImplementedError

    def answer(self, ref: str, price: Decimal | None) -> Reply:
        raise NotImplementedError


def _query(request: Received) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.path).query).items()}


class FakeShopee(FakeMarketplace):
    def ref(self, request: Received) -> str:
        query = _query(request)
        return f"{query['shopid']}.{query['itemid']}"

    def answer(self, ref: str, price: Decimal | None) -> Reply:
        if price is None:
            return Reply(200, {"error": 4, "error_msg": None, "data": None})
        shop_id, item_id = ref.split(".")
        scaled = int(price * 100_000)
        return Reply(
            200,
            {
                "error": None,
                "error_msg": None,
                "data": {
                    "itemid": int(item_id),
                    "shopid": int(shop_id),
                    "name": f"Shopee item {item_id}",
                    "currency": "IDR",
                    "price": scaled,
                    "price_min": scaled,
                    "price_max": scaled,
                    "price_before_discount": scaled + 1_000_000_000,
                    "stock": 7,
                    "item_status": "normal",
                },
            },
        )


class FakeTokopedia(FakeMarketplace):
    def ref(self, request: Received) -> str:
        variables = request.json()[0]["variables"]
        return f"{variables['shopDomain']}/{variables['productKey']}"

    def answer(self, ref: str, price: Decimal | None) -> Reply:
        if price is None:
            return Reply(
                200,
                [
                    {
                        "errors": [{"message": "product not found"}],
                        "data": {"pdpGetLayout": None},
                    }
                ],
            )
        content = {
            "name": f"Tokopedia {ref}",
            "price": {"value": int(price) + 10_000, "currency": "IDR"},
            # A running campaign: the discounted price is what a buyer pays.
            "campaign": {
                "isActive": True,
                "discountedPrice": int(price),
                "originalPrice": int(price) + 10_000,
            },
            "stock": {"value": "12"},
        }
        layout = {
            "basicInfo": {"id": "2150", "status": "ACTIVE"},
            "components": [
                {"name": "product_media", "data": [{"media": []}]},
                {"name": "product_content", "data": [content]},
            ],
        }
        return Reply(200, [{"data": {"pdpGetLayout": layout}}])


class FakeLazada(FakeMarketplace):
    def ref(self, request: Received) -> str:
        return _query(request)["itemId"]

    def answer(self, ref: str, price: Decimal | None) -> Reply:
        if price is None:
            return Reply(200, {"success": False, "ret": ["FAIL_SYS_ITEM_NOT_FOUND"]})
        sku = {
            "price": {
                "salePrice": {"value": float(price), "text": f"Rp{price}"},
                "originalPrice": {"value": float(price) + 5000},
            },
            "stock": 3,
        }
        fields = {"product": {"title": f"Lazada {ref}"}, "skuInfos": {"0": sku}}
        return Reply(200, {"success": True, "data": {"root": {"fields": fields}}})
